"""The LangChain cookbook scripts run end to end: each script's `main()`, in this process so the embedded models
load once for the whole suite (the LlamaIndex and remote cookbook tests run their scripts as subprocesses)."""
from __future__ import annotations

import re

import pytest

from tests.support.cookbooks import load_cookbook


@pytest.fixture
def run(capsys, monkeypatch):
    """Run `cookbook/<script>` as `python cookbook/<script>` would, and return what it printed."""
    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)  # the scripts are about the embedded default

    def run(script: str) -> str:
        capsys.readouterr()
        load_cookbook(script.removesuffix(".py")).main()
        return capsys.readouterr().out

    return run


def test_lcel(run):
    out = run("langchain_lcel.py")
    assert re.search(r"^A: \S", out, re.M) and "policy smollm2-135m-instruct" in out
    assert "period 0:" in out and "settled" in out
    streamed = re.search(r"^streamed answer: (.+)", out, re.M | re.S).group(1).strip()
    settled = "".join(eval(m) for m in re.findall(r"settled ('.*'|\".*\")$", out, re.M))  # noqa: S307 (repr)
    assert settled.strip() == streamed


def test_rag(run):
    out = run("langchain_rag.py")
    assert "retrieved: ['Honeybees tell their nestmates" in out
    instructions = re.findall(r"^  - (.+)$", out, re.M)
    assert len(instructions) == 3 and all("How do honeybees tell each other" in i for i in instructions)


def test_agent_refine(run):
    out = run("langchain_agent_refine.py")
    draft, refined = map(float, re.search(r"draft reward (\S+) -> refined reward (\S+)", out).groups())
    assert refined >= draft


def test_langgraph_refine(run):
    out = run("langgraph_refine.py")
    assert "messages: HumanMessage -> AIMessage -> ToolMessage -> AIMessage" in out
    assert "tool called: search_documents({'query': 'How do honeybees tell each other" in out
    draft, refined = map(float, re.search(r"draft reward (\S+) -> refined reward (\S+)", out).groups())
    assert refined >= draft and "; 1 Darwin search)" in out


def test_reward_blend(run):
    out = run("reward_blend.py")
    assert re.search(r"^default: .* -> prefers the title$", out, re.M)
    assert re.search(r"^blend: .* -> prefers the correct answer$", out, re.M)
    assert re.search(r"^A: \S", out, re.M)
    refined, draft = map(float, re.search(r"^reward (\S+) \(draft (\S+);", out, re.M).groups())
    assert refined >= draft
