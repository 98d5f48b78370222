"""The command line, run as a user runs it: a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "darwin_chains.cli"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["align", "hi", "--keep-top", "5"], "keep_top (k) must be at least 1 and smaller than the number of beams"),
    (["align", "hi", "--replacement-period", "0"], "replacement_period must be a whole number >= 1"),
    (["align", "hi", "--top-p", "1.5"], "top_p must be in (0, 1]"),
    (["align", "   "], "instruction is empty"),
    (["align", "hi", "--policy", "/no/such/model"], "is neither 'embedded'"),
    (["align", "hi", "--reward", "nonsense"], "unknown reward 'nonsense'"),
])
def test_bad_input_exits_non_zero_with_one_clear_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_method_is_an_argparse_error():
    out = run("align", "hi", "--method", "beam")
    assert out.returncode == 2 and "invalid choice" in out.stderr


@pytest.mark.integration
def test_align_json_on_the_embedded_model():
    out = run("align", "Name three primary colours.", "--max-new-tokens", "24", "--replacement-period", "8",
              "--mutants", "3", "--keep-top", "1", "--json", "--seed", "1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"answer", "reward", "trace"} and data["answer"].strip()
    trace = data["trace"]
    for key in ("seconds", "tokens_generated", "reward_calls", "cycles", "seed_sample"):
        assert key in trace
    cycle = trace["cycles"][0]
    assert len(cycle["instructions"]) == 3 and cycle["periods"] and cycle["archive_before"] and cycle["archive_after"]
    assert all(len(p["rewards"]) == 3 for p in cycle["periods"])
    assert trace["tokens_generated"] > 0 and trace["reward_calls"] > 0
    assert data["reward"] == max([trace["seed_sample"]["reward"], *cycle["final_rewards"]])


@pytest.mark.integration
def test_align_reads_stdin_and_prints_the_answer():
    out = run("align", "-", "--method", "sample", "--max-new-tokens", "12", stdin="Say hello.")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
