"""The LangChain cookbook scripts run end to end, as a user runs them: `python cookbook/<name>.py` from the root."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.integration


def run(script: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DARWIN_CHAINS_POLICY", None)  # the scripts are about the embedded default
    done = subprocess.run([sys.executable, f"cookbook/{script}"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_lcel():
    out = run("langchain_lcel.py")
    assert re.search(r"^A: \S", out, re.M) and "policy smollm2-135m-instruct" in out
    assert "period 0:" in out and "settled" in out
    streamed = re.search(r"^streamed answer: (.+)", out, re.M | re.S).group(1).strip()
    settled = "".join(eval(m) for m in re.findall(r"settled ('.*'|\".*\")$", out, re.M))  # noqa: S307 (repr)
    assert settled.strip() == streamed


def test_rag():
    out = run("langchain_rag.py")
    assert "retrieved: ['Honeybees tell their nestmates" in out
    instructions = re.findall(r"^  - (.+)$", out, re.M)
    assert len(instructions) == 3 and all("How do honeybees tell each other" in i for i in instructions)


def test_agent_refine():
    out = run("langchain_agent_refine.py")
    draft, refined = map(float, re.search(r"draft reward (\S+) -> refined reward (\S+)", out).groups())
    assert refined >= draft
