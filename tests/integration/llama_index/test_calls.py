"""DarwinLLM searches only where it pays, in chat engines and a router over the real MiniLM index: one search per
chat-engine turn, a plain sample for the condensing and routing steps, counted.

The searches are counted from the instrumentation stream (`DarwinSearchStartedEvent.method`: "darwin" for a search,
"sample" for one plain sample). The policies are scripted fakes, for speed (FakePolicy) and because the router's
selector needs its JSON answer (ScriptedChatPolicy); test_smollm2.py counts a chat-engine turn on the real model.
The agent and template calls are counted in tests/llama_index/test_calls.py.
"""
from __future__ import annotations

import json

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import QueryEngineTool
from llama_index.llms.darwin import DarwinLLM

from tests.support.llama_index_fixtures import methods
from tests.support.searches import FAST, ScriptedChatPolicy, SpyPolicy

FOLLOW_UP = "And how does the dance show the distance?"


# -- chat engines ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["chat", "stream_chat", "achat", "astream_chat"])
async def test_a_condense_plus_context_turn_costs_one_search(minilm_index, rag_cookbook, recorder, call):
    spy = SpyPolicy(FakePolicy())
    llm = DarwinLLM(policy=spy, reward=KeywordReward(), **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    for question in (rag_cookbook.QUESTION, FOLLOW_UP):
        response = getattr(engine, call)(question)
        response = await response if call.startswith("a") else response
        if "stream" in call:
            text = ("".join([t async for t in response.async_response_gen()]) if call.startswith("a")
                    else "".join(response.response_gen))
            assert text.strip()
    # Turn 1 has no history to condense; turn 2 condenses with one plain sample, then searches the answer.
    assert methods(recorder) == ["darwin", "sample", "darwin"]
    (condense,) = [p for p in spy.prompts if "standalone question" in p.instruction]
    assert FOLLOW_UP in condense.instruction and rag_cookbook.QUESTION in condense.instruction
    assert len(spy.prompts) == 4 + 1 + 4  # three mutants and the seed sample per search, one beam for the step


def test_a_condense_question_turn_costs_one_search(minilm_index, rag_cookbook, recorder):
    """This engine condenses through `predict` with a CUSTOM template, as people's own answer templates are: the
    template's text (LlamaIndex's exported condense template), not the prompt type, says it is a step."""
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_question", llm=llm, similarity_top_k=1)
    engine.chat(rag_cookbook.QUESTION)
    engine.chat(FOLLOW_UP)
    assert methods(recorder) == ["darwin", "sample", "darwin"]


def test_search_everywhere_searches_the_condense_call_too(minilm_index, rag_cookbook, recorder):
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), search="everywhere", **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    engine.chat(rag_cookbook.QUESTION)
    engine.chat(FOLLOW_UP)
    assert methods(recorder) == ["darwin", "darwin", "darwin"]


# -- a router: the selector's call is a step -----------------------------------------------------------------------


def test_a_router_query_engine_routes_with_a_sample_and_searches_the_answer(minilm_index, rag_cookbook, recorder):
    def script(prompt) -> str:
        if "Return the choice" in prompt.instruction or "choices" in prompt.instruction:  # the selector's prompt
            return json.dumps([{"choice": 1, "reason": "it is about bees"}])
        return f"The waggle dance. ({prompt.request})"

    policy = ScriptedChatPolicy(script)
    llm = DarwinLLM(policy=policy, reward=KeywordReward(["waggle"]), **FAST)
    tools = [QueryEngineTool.from_defaults(minilm_index.as_query_engine(llm=llm, similarity_top_k=1),
                                           description=d) for d in ("Facts about bees.", "Facts about mountains.")]
    engine = RouterQueryEngine(selector=LLMSingleSelector.from_defaults(llm=llm), query_engine_tools=tools, llm=llm)
    response = engine.query(rag_cookbook.QUESTION)
    assert "waggle dance" in str(response)
    assert methods(recorder) == ["sample", "darwin"]
    assert "choice" in policy.asked[0].instruction.lower() and len(policy.asked) == 1 + 4
