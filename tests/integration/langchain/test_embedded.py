"""DarwinAlign on the real embedded SmolLM2-135M-Instruct, with the default reward (MiniLM), in real LCEL chains.

Each search is small (three mutants, 24 tokens, replacement every 8), so the module costs about half a minute.
"""
from __future__ import annotations

import asyncio

import pytest
from darwin_chains import Prompt, defaults
from darwin_chains.testing import KeywordReward
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_darwin import DarwinAlign

from tests.support.searches import SMALL

QUESTIONS = ["Give three tips for writing a clear email.", "Why is the sky blue?"]
PROMPT = ChatPromptTemplate.from_messages([("system", "You are a helpful assistant."), ("human", "{question}")])


@pytest.fixture(scope="module")
def align(smollm2_policy) -> DarwinAlign:
    # No policy: the default, the embedded model unless $DARWIN_CHAINS_POLICY names another (not here).
    align = DarwinAlign(seed_sample=False, include_trace=True, **SMALL)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DARWIN_CHAINS_POLICY", raising=False)
        align.components()
    return align


@pytest.fixture(scope="module")
def sequential(align) -> list:
    """One plain invoke per question: the reference every other path must reproduce."""
    return [align.invoke(PROMPT.invoke({"question": q})) for q in QUESTIONS]


def test_the_default_policy_is_the_embedded_model(align, sequential, smollm2_policy):
    assert sequential[0].response_metadata["model_name"] == smollm2_policy.name
    assert align.components()[0] is smollm2_policy  # loaded once per process, shared


def test_the_answer_and_its_reward(sequential):
    message = sequential[0]
    assert message.content.strip()
    prompt = Prompt.of([{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": QUESTIONS[0]}])
    (rescored,) = defaults.reward().score(prompt, [message.content])
    assert message.response_metadata["reward"] == rescored  # fp32 features: exactly (test_incremental_reward.py)
    trace = message.response_metadata["darwin"]["trace"]
    finals = trace["cycles"][0]["final_rewards"]
    assert message.response_metadata["reward"] == pytest.approx(max(finals))
    assert trace["granularity"] == "token" and len(trace["cycles"][0]["periods"]) >= 2
    assert message.usage_metadata["output_tokens"] == trace["tokens_generated"] >= 3 * 8
    assert message.usage_metadata["input_tokens"] == trace["tokens_encoded"] > 0


def test_prompt_to_parser_chain_streams_text_before_the_search_ends(align, sequential):
    pieces = list((PROMPT | align | StrOutputParser()).stream({"question": QUESTIONS[0]}))
    assert len(pieces) >= 2, "with keep_top=1 the answer's start settles after the first replacement"
    assert "".join(pieces) == sequential[0].content


async def test_concurrent_ainvoke_matches_sequential_invoke(align, sequential):
    together = await asyncio.wait_for(
        asyncio.gather(*(align.ainvoke(PROMPT.invoke({"question": q})) for q in QUESTIONS)), timeout=300)
    assert [m.content for m in together] == [m.content for m in sequential]


async def test_astream_events_reports_progress_and_streams_the_answer(align, sequential):
    names, text = [], ""
    async for event in (PROMPT | align).astream_events({"question": QUESTIONS[1]}, version="v2"):
        if event["event"] == "on_custom_event":
            names.append(event["name"])
        elif event["event"] == "on_chain_stream" and event["name"] == "DarwinAlign":
            text += event["data"]["chunk"].content
    assert text == sequential[1].content
    assert names.count("darwin.period_scored") >= 2 and "darwin.archive_updated" in names


def test_batch_runs_up_to_max_concurrency_searches_in_one_batch(smollm2_policy):
    """The engine records the most rows it decoded in one step: past one search's beams only when searches shared
    a step. Two beams a search, no seed sample."""
    align = DarwinAlign(policy=smollm2_policy, reward=KeywordReward(["email"]), seed_sample=False, mutants=2,
                        keep_top=1, replacement_period=4, max_new_tokens=12, seed=0)
    questions = [*QUESTIONS, "Name two primary colours."]
    engine = smollm2_policy.engine

    engine.peak_rows = 0
    alone = [m.content for m in align.batch(questions, config={"max_concurrency": 1})]
    assert engine.peak_rows == 2 and all(alone)
    engine.peak_rows = 0
    assert [m.content for m in align.batch(questions, config={"max_concurrency": 3})] == alone
    assert engine.peak_rows > 2  # gathered ainvokes share it too (test_concurrent_ainvoke_matches_sequential_invoke)


def test_refinement_never_returns_less_than_the_draft(align):
    draft = "Blue light scatters more than red light in the air, so the sky looks blue."
    message = align.invoke({"question": QUESTIONS[1], "draft": draft}, seed=3)
    (draft_candidate,) = message.response_metadata["darwin"]["trace"]["drafts"]
    assert draft_candidate["response"] == draft
    assert message.response_metadata["reward"] >= draft_candidate["reward"]


async def test_with_default_settings_text_streams_before_the_last_period(smollm2_policy):
    """Default search settings (5 mutants, keep_top 3, the seed sample), three periods of 16 tokens: the streamed
    search commits to its leader at the first scoring round (stream_commit), so text arrives before the last period
    is scored. Before, rival beams and the seed sample shared no prefix and everything came at the end."""
    align = DarwinAlign(policy=smollm2_policy, replacement_period=16, max_new_tokens=48, seed=0, include_trace=True)
    order, text, final = [], "", None
    async for event in (PROMPT | align).astream_events({"question": QUESTIONS[1]}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] == "darwin.period_scored":
            order.append("period")
        elif event["event"] == "on_chain_stream" and event["name"] == "DarwinAlign":
            chunk = event["data"]["chunk"]
            text += chunk.content
            if chunk.content and not chunk.response_metadata:
                order.append("text")
            final = chunk if chunk.response_metadata else final
    assert order.count("period") >= 2 and "text" in order
    assert order.index("text") < len(order) - 1 - order[::-1].index("period")  # text before the last period
    trace = final.response_metadata["darwin"]["trace"]
    assert text.strip() and any("stream_commit" in n for n in final.response_metadata["darwin"]["notes"])
    assert trace["seed_sample"] is None or "retired" in trace["seed_sample"]["source"]
