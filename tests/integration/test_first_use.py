"""A fresh process whose first act is six searches at once, through each face: every model loads once, in its own
dtype, and every search answers (`darwin_chains/loading.py`). Each case is one run of
`benchmarks/concurrency/first_use.py`, whose committed results repeat it in 20 processes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("face, dtype", [
    ("arun", "fp32"),   # gathered Search.arun: half the rewards in fp32, half in bf16, the mix that raced
    ("batch", "bf16"),  # DarwinAlign.batch, the default reward in bf16 beside the fp32 policy
    ("serve", "fp32"),  # darwin-chains serve's first requests
])
def test_a_fresh_process_starting_with_six_concurrent_searches_answers_them_all(tmp_path, face, dtype):
    out = tmp_path / "first_use.json"
    done = subprocess.run([sys.executable, "benchmarks/concurrency/first_use.py", "--faces", face, "--dtypes", dtype,
                           "--processes", "1", "--searches", "6", "--timeout", "300", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"].values()
    assert run["processes"] == run["succeeded"] == 1 and run["searches_answered"] == run["searches"] == 6, run
