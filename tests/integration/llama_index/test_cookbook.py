"""The LlamaIndex cookbook scripts run end to end: each script's `main()`, in this process so the embedded models
load once for the whole suite, as the LangChain cookbook tests do."""
from __future__ import annotations

import asyncio
import inspect
import re

import pytest

from tests.support.cookbooks import load_cookbook


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `cookbook/<name>.py` as `python cookbook/<name>.py` would, and return what it printed."""
    from llama_index.core.instrumentation import get_dispatcher

    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)  # the embedded default, as on a fresh set-up
    root = get_dispatcher()
    handlers = list(root.event_handlers)

    def run(name: str) -> str:
        capsys.readouterr()
        done = load_cookbook(name).main()
        if inspect.iscoroutine(done):
            asyncio.run(done)
        return capsys.readouterr().out

    yield run
    root.event_handlers[:] = handlers  # the script's own event handler goes with it


def test_query_engine_cookbook(run):
    out = run("llama_index_query_engine")
    assert "policy: smollm2-135m-instruct (context window 8,192 tokens)" in out
    answers = re.findall(r"^A: (.*)$", out, re.MULTILINE)
    assert len(answers) == 2 and all(a.strip() for a in answers)
    assert "(source: Honeybees tell their nestmates" in out
    assert len(re.findall(r"reward -?\d+\.\d+, \d+ beams replaced", out)) == 2


def test_agent_cookbook(run):
    out = run("llama_index_agent")
    assert "tool lookup_planet -> Mars is the fourth planet" in out
    draft = float(re.search(r"^draft \(reward (-?\d+\.\d+)\)", out, re.MULTILINE).group(1))
    final = float(re.search(r"^reward (-?\d+\.\d+);", out, re.MULTILINE).group(1))
    assert re.search(r"^A: \S", out, re.MULTILINE) and final >= draft
