"""The LlamaIndex cookbook scripts run end to end, as a user runs them: `python cookbook/<name>.py`."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from .fakes import COOKBOOK

pytestmark = pytest.mark.integration


def run(name: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DARWIN_CHAINS_POLICY", None)  # the embedded default, as on a fresh set-up
    done = subprocess.run([sys.executable, str(COOKBOOK / f"{name}.py")], cwd=COOKBOOK.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_query_engine_cookbook():
    out = run("llama_index_query_engine")
    assert "policy: smollm2-135m-instruct (context window 8,192 tokens)" in out
    answers = re.findall(r"^A: (.*)$", out, re.MULTILINE)
    assert len(answers) == 2 and all(a.strip() for a in answers)
    assert "(source: Honeybees tell their nestmates" in out
    assert len(re.findall(r"reward -?\d+\.\d+, \d+ beams replaced", out)) == 2


def test_agent_cookbook():
    out = run("llama_index_agent")
    assert "tool lookup_planet -> Mars is the fourth planet" in out
    draft = float(re.search(r"^draft \(reward (-?\d+\.\d+)\)", out, re.MULTILINE).group(1))
    final = float(re.search(r"^reward (-?\d+\.\d+);", out, re.MULTILINE).group(1))
    assert re.search(r"^A: \S", out, re.MULTILINE) and final >= draft
