"""Contract tests for the three protocols: what the search relies on, whatever the implementation.

Subclass one and provide its fixture, as langchain-openai subclasses LangChain's standard tests:

    class TestMyReward(RewardContract):
        @pytest.fixture
        def reward(self):
            return MyReward()

`PolicyContract` wants a `policy` fixture, `RewardContract` a `reward`, `MutatorContract` a `mutator`. The base
classes carry no Test prefix, so pytest collects only the subclasses.
"""
from __future__ import annotations

import asyncio
import math

import pytest

from ..config import Sampling
from ..errors import InputError
from ..prompt import Prompt

PROMPTS = [Prompt.of("Give three tips for writing a clear email."), Prompt.of("Write a haiku about autumn.")]


class PolicyContract:
    """A policy keeps batch order and the token budget, leaves finished beams alone, and adopts responses."""

    sampling = Sampling(temperature=0.8, top_p=0.95)

    def test_declares_capabilities(self, policy):
        assert isinstance(policy.supports_continuation, bool)
        assert policy.max_context is None or policy.max_context > 0
        assert isinstance(policy.name, str) and policy.name

    def test_start_gives_one_empty_beam_per_prompt_in_order(self, policy):
        beams = policy.start(PROMPTS, 16)
        assert [b.prompt for b in beams] == PROMPTS
        assert all(b.response == "" and b.tokens == 0 and not b.finished for b in beams)

    def test_extend_respects_the_token_budget_and_batch_order(self, policy):
        beams = policy.start(PROMPTS, 16)
        usage = policy.extend(beams, 6, self.sampling, seed=1)
        for beam in beams:
            assert beam.tokens <= (6 if policy.supports_continuation else 16)
            assert beam.finished or beam.tokens == 6
        assert [b.prompt for b in beams] == PROMPTS
        assert usage.output_tokens >= sum(b.tokens for b in beams)

    def test_extend_continues_where_it_left_off(self, policy):
        if not policy.supports_continuation:
            pytest.skip("this policy answers whole responses")
        beams = policy.start(PROMPTS[:1], 16)
        policy.extend(beams, 4, self.sampling, seed=1)
        first, tokens = beams[0].response, beams[0].tokens
        policy.extend(beams, 4, self.sampling, seed=2)
        if not beams[0].finished or beams[0].tokens > tokens:
            assert beams[0].response.startswith(first.rstrip()[: max(0, len(first.rstrip()) - 2)])
            assert beams[0].tokens <= tokens + 4

    def test_finished_beams_are_left_alone(self, policy):
        beams = policy.start(PROMPTS[:1], 16)
        policy.extend(beams, 3, self.sampling, seed=1)
        beams[0].finished = True
        before = (beams[0].response, beams[0].tokens)
        usage = policy.extend(beams, 3, self.sampling, seed=2)
        assert (beams[0].response, beams[0].tokens) == before
        assert usage.output_tokens == 0

    def test_adopt_keeps_own_prompt_and_takes_donor_response(self, policy):
        beams = policy.start(PROMPTS, 16)
        policy.extend(beams, 4, self.sampling, seed=3)
        adopted = policy.adopt(beams[1], beams[0])
        assert adopted.prompt == PROMPTS[1]
        assert (adopted.response, adopted.tokens, adopted.finished) == (beams[0].response, beams[0].tokens,
                                                                         beams[0].finished)
        if policy.supports_continuation and not adopted.finished:
            policy.extend([adopted], 3, self.sampling, seed=4)
            assert adopted.tokens <= beams[0].tokens + 3
        assert beams[0].response == adopted.response[: len(beams[0].response)] or adopted.finished

    def test_prompt_too_long_names_both_lengths(self, policy):
        if policy.max_context is None:
            pytest.skip("context window unknown")
        long = Prompt.of("cat " * (policy.max_context + 10))
        with pytest.raises(InputError) as err:
            policy.start([long], 8)
        message = str(err.value)
        assert "context window" in message and f"{policy.max_context:,}" in message or str(policy.max_context) in message


class RewardContract:
    """A reward scores every response, partial or empty, on its own, in order, the same way every time."""

    prompt = Prompt.of("Give three tips for writing a clear email.")
    responses = ("Use a clear subject line, keep it short, and proofread before sending.",
                 "The cat sat on the mat.", "Use a clear")

    def test_one_finite_float_per_response(self, reward):
        scores = reward.score(self.prompt, list(self.responses))
        assert len(scores) == len(self.responses)
        assert all(isinstance(s, float) and math.isfinite(s) for s in scores)

    def test_empty_and_partial_responses_are_scored(self, reward):
        scores = reward.score(self.prompt, ["", "Use", "Use a clear subject"])
        assert len(scores) == 3 and all(math.isfinite(s) for s in scores)

    def test_scores_are_deterministic_and_follow_batch_order(self, reward):
        forward = reward.score(self.prompt, list(self.responses))
        assert reward.score(self.prompt, list(self.responses)) == pytest.approx(forward, rel=1e-4, abs=1e-5)
        backward = reward.score(self.prompt, list(self.responses[::-1]))
        assert backward[::-1] == pytest.approx(forward, rel=1e-4, abs=1e-5)

    def test_a_response_scores_the_same_alone_as_in_a_batch(self, reward):
        # The search scores each distinct (instruction, response) once and reuses the score in later batches.
        batch = reward.score(self.prompt, list(self.responses))
        alone = [reward.score(self.prompt, [r])[0] for r in self.responses]
        assert alone == pytest.approx(batch, rel=1e-4, abs=1e-5)

    def test_async_form_agrees_with_the_sync_one(self, reward):
        if not hasattr(reward, "ascore"):
            pytest.skip("no async form: the search runs score in a worker thread")
        sync = reward.score(self.prompt, list(self.responses))
        assert asyncio.run(reward.ascore(self.prompt, list(self.responses))) == pytest.approx(sync, rel=1e-4,
                                                                                               abs=1e-5)


class MutatorContract:
    """A mutator returns exactly `n` non-empty variants, the same ones for the same seed."""

    instruction = "Give three tips for writing a clear email."

    @pytest.mark.parametrize("n", [1, 3, 5])
    def test_exactly_n_non_empty_variants(self, mutator, n):
        variants = mutator.mutate(self.instruction, n, seed=0)
        assert len(variants) == n
        assert all(isinstance(v, str) and v.strip() for v in variants)

    def test_same_seed_same_variants(self, mutator):
        assert list(mutator.mutate(self.instruction, 3, seed=7)) == list(mutator.mutate(self.instruction, 3, seed=7))

    def test_a_variant_can_be_mutated_again(self, mutator):
        # Later cycles mutate an archived variant, not the original.
        variant = mutator.mutate(self.instruction, 1, seed=0)[0]
        again = mutator.mutate(variant, 2, seed=1)
        assert len(again) == 2 and all(isinstance(v, str) and v.strip() for v in again)

    def test_takes_the_context_when_it_says_so(self, mutator):
        # A mutator with `supports_context` is called with context= (the prompt's text around the request).
        if not getattr(mutator, "supports_context", False):
            pytest.skip("no supports_context: the search calls mutate(instruction, n, seed)")
        variants = mutator.mutate(self.instruction, 3, seed=0, context="Answer using this context: cats purr.")
        assert len(variants) == 3 and all(isinstance(v, str) and v.strip() for v in variants)

    def test_async_form_agrees_with_the_sync_one(self, mutator):
        if not hasattr(mutator, "amutate"):
            pytest.skip("no async form: the search runs mutate in a worker thread")
        sync = mutator.mutate(self.instruction, 3, seed=2)
        assert list(asyncio.run(mutator.amutate(self.instruction, 3, seed=2))) == list(sync)
