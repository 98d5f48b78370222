"""DarwinLLM on the real thing: the embedded SmolLM2-135M-Instruct, the default reward, a MiniLM vector index."""
from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path

import pytest
from darwin_chains import ConfigError, InputError, Prompt
from darwin_chains.testing import KeywordReward
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent
from llama_index.llms.darwin import (
    DarwinLLM,
    DarwinReplacementEvent,
    DarwinSearchFinishedEvent,
    DarwinSearchStartedEvent,
)

from tests.support.loop_watch import LoopWatch
from tests.support.searches import SpyPolicy

README = Path(__file__).resolve().parents[3] / "README.md"
SMALL = dict(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=16)
EMAIL = "Give three tips for writing a clear email."


def test_metadata_and_lazy_default_policy(smollm2_policy, monkeypatch):
    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)
    llm = DarwinLLM(**SMALL)
    assert llm._components.loaded_policy is None
    meta = llm.metadata  # first use: loads the default policy, the embedded SmolLM2
    assert llm.policy is smollm2_policy
    assert meta.context_window == smollm2_policy.max_context == 8192
    assert (meta.model_name, meta.num_output, meta.is_chat_model) == ("smollm2-135m-instruct", 16, True)


def test_context_window_checks_on_the_real_policy(smollm2_policy):
    floor = len(smollm2_policy.encode(Prompt.of("Hi")))  # the shortest prompt, chat template included
    with pytest.raises(ConfigError, match=f"context window is 8,192 tokens.*at most {8192 - floor:,}"):
        DarwinLLM(policy=smollm2_policy, **{**SMALL, "max_new_tokens": 8192 - floor + 1})
    DarwinLLM(policy=smollm2_policy, **{**SMALL, "max_new_tokens": 8192 - floor})  # exactly fits
    with pytest.raises(InputError, match="context window is 8,192 tokens"):
        DarwinLLM(policy=smollm2_policy, **SMALL).complete("word " * 9000)


def test_chat_on_smollm2_is_traced(smollm2_policy, recorder):
    response = DarwinLLM(policy=smollm2_policy, **SMALL).chat([ChatMessage(role=MessageRole.USER, content=EMAIL)])
    assert response.message.content.strip()
    meta = response.additional_kwargs
    assert math.isfinite(meta["reward"]) and 0 < meta["trace"]["tokens_generated"] <= 4 * 16
    assert response.raw.trace.policy == "smollm2-135m-instruct"
    assert recorder.of(DarwinReplacementEvent)  # keep_top=1 of 3 beams: every period replaces
    (finished,) = recorder.of(DarwinSearchFinishedEvent)
    (end,) = recorder.of(LLMChatEndEvent)
    assert finished.reward == meta["reward"] and end.response.message.content == response.message.content


def test_stream_complete_on_smollm2():
    chunks = list(DarwinLLM(policy="embedded", **{**SMALL, "max_new_tokens": 24, "seed_sample": False})
                  .stream_complete(EMAIL))
    assert len(chunks) >= 2  # text settles after the first replacement
    assert "".join(c.delta for c in chunks) == chunks[-1].text == chunks[-1].raw.answer
    assert math.isfinite(chunks[-1].additional_kwargs["reward"])


async def test_acomplete_on_smollm2_leaves_the_event_loop_free(smollm2_policy, monkeypatch):
    """Every decoding step and every scoring by the default reward waits for a tick of the loop before it runs:
    work run on the loop, or a loop held waiting for it, would wait in vain."""
    llm = DarwinLLM(policy=smollm2_policy, **SMALL)
    _, reward, _ = llm._components.get()
    steps, scorings = LoopWatch(), LoopWatch()
    engine, scorer = type(smollm2_policy.engine), type(reward)
    monkeypatch.setattr(engine, "_step", steps.gated(engine._step))
    monkeypatch.setattr(scorer, "score", scorings.gated(scorer.score))
    async with steps.ticking(), scorings.ticking():
        response = await llm.acomplete(EMAIL)
    assert response.text.strip()
    assert steps.blocked == scorings.blocked == 0, (f"{steps.blocked} decoding steps and {scorings.blocked} "
                                                    "scorings ran while the loop was held")
    assert steps.free and scorings.free


async def test_gathered_achats_share_the_policys_batch(smollm2_policy):
    # Two beams a search and no seed sample: only searches side by side decode more than two rows in one step.
    llm = DarwinLLM(policy=smollm2_policy, reward=KeywordReward(["email"]), mutants=2, keep_top=1,
                    replacement_period=4, max_new_tokens=12, seed_sample=False)
    questions = [EMAIL, "Why is the sky blue?", "Name two primary colours."]
    smollm2_policy.engine.peak_rows = 0
    responses = await asyncio.gather(*(llm.achat([ChatMessage(role=MessageRole.USER, content=q)]) for q in questions))
    assert all(r.message.content.strip() for r in responses)
    assert smollm2_policy.engine.peak_rows > 2


def test_query_engine_on_smollm2_keeps_the_context(smollm2_policy, minilm_index, rag_cookbook):
    spy = SpyPolicy(smollm2_policy)
    llm = DarwinLLM(policy=spy, **SMALL)
    response = minilm_index.as_query_engine(llm=llm, similarity_top_k=1).query(rag_cookbook.QUESTION)
    node = response.source_nodes[0].text
    assert "waggle dance" in node and str(response).strip()
    assert len(spy.prompts) == 4 and all(node in p.instruction for p in spy.prompts)
    assert len({p.request for p in spy.prompts}) == 4  # the template mutator rewrote the query three ways


def test_streaming_chat_engine_turn_on_smollm2_is_one_search(smollm2_policy, minilm_index, rag_cookbook, recorder):
    spy = SpyPolicy(smollm2_policy)
    llm = DarwinLLM(policy=spy, **{**SMALL, "seed_sample": False})
    engine = minilm_index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    history = [ChatMessage(role=MessageRole.USER, content="Tell me about the Rosetta Stone."),
               ChatMessage(role=MessageRole.ASSISTANT, content="It is a stone slab with one decree in three scripts.")]
    streaming = engine.stream_chat(rag_cookbook.FOLLOW_UP, chat_history=history)
    text = "".join(streaming.response_gen)
    assert text.strip() and text == streaming.response
    # With history to condense, the turn is one plain sample of the real model (the standalone question), then one
    # search for the answer, which gets the retrieved text verbatim in its system message.
    assert [e.method for e in recorder.of(DarwinSearchStartedEvent)] == ["sample", "darwin"]
    condense, *searched = spy.prompts
    assert "standalone question" in condense.instruction and rag_cookbook.FOLLOW_UP in condense.instruction
    assert streaming.sources[0].raw_input["message"].strip()  # what the model condensed it to, used to retrieve
    node = streaming.source_nodes[0].text
    assert len(searched) == 3 and all(node in p.messages[0]["content"] for p in searched)
    assert all(p.messages[1:3] == tuple({"role": m.role.value, "content": m.content} for m in history)
               for p in searched)


def test_the_readme_llama_index_lines_run(smollm2_policy, minilm_index, monkeypatch):
    """README's own line once raised ConfigError (keep_top's old default, 3, needs more than 3 beams)."""
    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if "from llama_index.llms.darwin import DarwinLLM" in b]
    # Up to the query: tests/integration/test_docs.py runs the whole block, query included.
    built = block[: block.index("print(engine.query(")]
    scope = {"index": minilm_index}
    exec(built, scope)
    llm = scope["engine"]._response_synthesizer._llm
    assert isinstance(llm, DarwinLLM) and llm.policy is smollm2_policy  # the embedded default, loaded for metadata
    assert (llm.mutants, llm.max_new_tokens, llm.search) == (3, 24, "final")


def test_a_chat_with_context_carries_the_answers_grounding_verdict(smollm2_policy):
    """The embedded model and the default reward: the verdict reaches LlamaIndex's additional_kwargs."""
    llm = DarwinLLM(policy=smollm2_policy, seed=0, **SMALL)
    response = llm.chat([ChatMessage(role=MessageRole.SYSTEM, content="Context: The community pool opens at 7:15 AM "
                                     "every weekday and at 9 AM on weekends."),
                         ChatMessage(role=MessageRole.USER, content="When does the pool open on weekdays?")])
    grounding = response.additional_kwargs["grounding"]
    assert grounding["grounded"] == (not grounding["unsupported"]) and 0 <= grounding["score"] <= 1
    assert grounding["checked"] >= 0 and response.message.content.strip()
