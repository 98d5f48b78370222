"""Contract tests every Policy implementation must pass. Subclass `PolicyContract` and provide a `policy` fixture."""
from __future__ import annotations

import pytest

from darwin_chains import InputError, Prompt, Sampling

PROMPTS = [Prompt.of("Give three tips for writing a clear email."), Prompt.of("Write a haiku about autumn.")]


class PolicyContract:
    """What the search relies on, whatever the backend."""

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
