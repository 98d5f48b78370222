"""The cookbook's agent workflow: a deterministic tool call, a drafted answer, and Darwin's refinement of it."""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.llms.darwin import DarwinLLM

from tests.support.cookbooks import load_cookbook
from tests.support.searches import SpyPolicy


@pytest.fixture(scope="module")
def agent():
    return load_cookbook("llama_index_agent")


def test_lookup_tool_is_deterministic(agent):
    assert "Phobos and Deimos" in agent.lookup_planet(" Mars ")
    assert agent.lookup_planet("Pluto") == "No facts found about Pluto."


async def test_workflow_refines_the_draft_with_the_tool_facts_untouched(agent):
    spy = SpyPolicy(FakePolicy())
    llm = DarwinLLM(policy=spy, reward=KeywordReward(("Phobos", "Deimos", "moons")), mutants=3, keep_top=1,
                    replacement_period=4, max_new_tokens=16)
    handler = agent.PlanetAgent(llm, timeout=60).run(question=agent.QUESTION)
    steps = [ev async for ev in handler.stream_events()]
    response = await handler
    (facts,) = [ev for ev in steps if isinstance(ev, agent.Facts)]
    (draft,) = [ev for ev in steps if isinstance(ev, agent.Draft)]
    assert facts.facts == agent.PLANETS["mars"]
    # The facts reach every beam of both calls in the system message, which mutation never rewrites.
    assert len(spy.prompts) == 1 + 4  # the one-sample draft, then three mutants and the seed sample
    assert all(p.messages[0]["role"] == "system" and facts.facts in p.messages[0]["content"] for p in spy.prompts)
    assert all(p.messages[-1]["content"].count(agent.QUESTION) == 1 for p in spy.prompts)
    # The draft joined the refining search as a candidate, so the answer scores at least as well.
    trace = response.raw.trace
    assert [d.response for d in trace.drafts] == [draft.draft]
    assert response.additional_kwargs["reward"] >= draft.draft_reward == trace.drafts[0].reward
    assert trace.method == "darwin" and response.message.content == response.raw.answer
