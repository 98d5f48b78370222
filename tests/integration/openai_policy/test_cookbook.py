"""The OpenAI-policy cookbook runs end to end, as a user runs it: `openai_remote.py` against the session's real
`transformers serve` through `--base-url`, so that it does not start a second one."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]

pytestmark = pytest.mark.integration


def run(*args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DARWIN_CHAINS_POLICY", None)
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_openai_remote(served_smollm2):
    out = run("cookbook/openai_remote.py", "--base-url", served_smollm2)
    assert "completions mode" in out and re.search(r"^A: \S", out, re.M)
    assert re.search(r"\d+ requests, 0 retries", out) and "judge scores: answer" in out
    assert "granularity response" in out and "422" in out
