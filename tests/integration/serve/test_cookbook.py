"""The serve cookbook runs end to end, as a user runs it: `openai_serve_client.py` starts `darwin-chains serve`
and asks it with the `openai` client and ChatOpenAI."""
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


def test_openai_serve_client():
    out = run("cookbook/openai_serve_client.py")
    assert "models: ['darwin:smollm2-135m-instruct']" in out and re.search(r"^A: \S", out, re.M)
    assert "bad parameter -> 400 unknown search parameter(s): mutantz" in out
    assert re.search(r"^ChatOpenAI: \S", out, re.M)
