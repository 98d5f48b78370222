"""The benchmark command on the embedded SmolLM2, run as a user runs it: a subprocess."""
from __future__ import annotations

import subprocess
import sys

from darwin_chains.cli.bench import read_rows
from tests.unit.test_bench import SHARED_DATA


def test_bench_cli_on_the_embedded_model(tmp_path):
    out = tmp_path / "bench.jsonl"
    args = [sys.executable, "-m", "darwin_chains.cli", "bench", "--prompts", "alpaca:1", "--data-dir", str(SHARED_DATA),
            "--methods", "sample",
            "best-of-5", "--max-new-tokens", "12", "--out", str(out), "--judge", "reference", "relevance",
            "--progress", "off"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert {r["method"] for r in rows} == {"sample", "best-of-5"}
    assert all(set(r["judges"]) == {"reference", "relevance"} for r in rows)
    assert "| best-of-5 |" in done.stdout
    # Reruns that skip finished rows, and refuse a different config, are tested on tiny models (tests/unit/test_bench.py).
