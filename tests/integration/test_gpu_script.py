"""The GPU check (benchmarks/gpu/) runs on CPU in its small mode: tiny random-weight shapes, every section of the
real run (throughput against HF generate, Darwin against Best-of-5, concurrency and determinism, the
out-of-memory split, simulated here since a CPU has no GPU memory to exhaust). There is no GPU in CI; on one,
`bash benchmarks/gpu/run.sh` runs the real shapes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_the_gpu_script_runs_every_section_in_its_small_mode(tmp_path):
    out = tmp_path / "small.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "benchmarks/gpu/gpu.py", "--small", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["device"] == "cpu" and results["machine"]["cpu_capability"]
    tiny = results["shapes"]["tiny"]
    for rows in (2, 5):
        section = tiny[f"throughput_{rows}_rows"]
        assert section["engine_tokens_per_s"] > 0 and section["generate_tokens_per_s"] > 0, section
    for rows in (2, 5):
        paths = tiny[f"attention_paths_{rows}_rows"]["tokens_per_s"]
        assert paths["batched"] > 0 and paths["row_loop"] > 0, paths
    searches = tiny["searches"]
    assert "error" not in searches, searches
    assert searches["darwin_over_best_of_5_median"] > 0 and searches["concurrent_over_sequential"] > 0
    assert searches["same_answer_alone_and_beside_others"] == searches["searches"]  # CPU: bitwise, as promised
    oom = tiny["out_of_memory"]
    assert oom["limit_after"] < oom["rows_asked"] == oom["rows_finished"], oom  # halved, and every row finished


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA: run.sh would run for real")
def test_run_sh_refuses_a_machine_without_cuda_and_says_what_to_run():
    done = subprocess.run(["bash", "benchmarks/gpu/run.sh"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert done.returncode != 0 and "no CUDA device" in done.stderr
