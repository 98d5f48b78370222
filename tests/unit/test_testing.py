"""The fakes that darwin_chains.testing ships pass the same contracts as the real components, and ScriptedPolicy
writes exactly its script."""
from __future__ import annotations

import pytest

from darwin_chains import Prompt, Sampling, Search, SearchConfig, TemplateMutator
from darwin_chains.testing import FakePolicy, KeywordReward, ScriptedPolicy
from darwin_chains.testing.contracts import PolicyContract, RewardContract

EMAIL = "Use a clear subject line, keep it short, and proofread before sending."


class TestFakePolicyContract(PolicyContract):
    @pytest.fixture
    def policy(self):
        return FakePolicy(stop=0.05)


class TestScriptedPolicyContract(PolicyContract):
    @pytest.fixture
    def policy(self):
        return ScriptedPolicy(default=EMAIL)


class TestScriptedWholeResponsePolicyContract(PolicyContract):
    @pytest.fixture
    def policy(self):
        return ScriptedPolicy(default=EMAIL, supports_continuation=False)


class TestKeywordRewardContract(RewardContract):
    @pytest.fixture
    def reward(self):
        return KeywordReward(["clear", "short"])


def test_scripted_beams_write_their_responses_in_order_and_finish_at_the_end():
    policy = ScriptedPolicy(["one two three", ["a", "b"]])
    beams = policy.start([Prompt.of("x"), Prompt.of("y")], 8)
    usage = policy.extend(beams, 2, Sampling(), seed=5)
    assert [(b.response, b.tokens, b.finished) for b in beams] == [("one two", 2, False), ("ab", 2, True)]
    assert usage.output_tokens == 4
    usage = policy.extend(beams, 2, Sampling(), seed=6)
    assert [(b.response, b.tokens, b.finished) for b in beams] == [("one two three", 3, True), ("ab", 2, True)]
    assert usage.output_tokens == 1
    assert policy.history == [("start", ("x", "y"), 8), ("extend", ("x", "y"), 2, 5), ("extend", ("x",), 2, 6)]


def test_an_adopted_beam_goes_on_with_the_donor_script_under_its_own_prompt():
    policy = ScriptedPolicy().enqueue("a b c d", "x")
    own, donor = policy.start([Prompt.of("mine"), Prompt.of("theirs")], 8)[::-1]
    policy.extend([donor, own], 2, Sampling(), seed=0)
    adopted = policy.adopt(own, donor)
    policy.extend([adopted], 1, Sampling(), seed=1)
    assert (adopted.prompt.request, adopted.response, adopted.tokens) == ("theirs", "a b c", 3)
    assert donor.response == "a b"  # the donor's own beam is not moved along
    assert policy.calls("adopt") == [("adopt", "theirs", "a b")]


def test_whole_response_mode_writes_everything_in_one_call():
    policy = ScriptedPolicy([EMAIL], supports_continuation=False)
    beam = policy.start([Prompt.of("x")], 64)[0]
    policy.extend([beam], 64, Sampling(), seed=0)
    assert (beam.response, beam.finished) == (EMAIL, True)


def test_an_empty_queue_without_a_default_names_the_fix():
    with pytest.raises(LookupError, match="enqueue"):
        ScriptedPolicy(["only one"]).start([Prompt.of("x"), Prompt.of("y")], 8)


def test_a_search_over_a_script_is_exact():
    """Beams that write the keyword win: the search's answer and its replacements follow from the script."""
    policy = ScriptedPolicy(default="plain words only here and there")
    policy.enqueue("cat cat cat cat", "dog dog dog dog", "cat and more words")
    config = SearchConfig(mutants=3, keep_top=1, replacement_period=2, max_new_tokens=4, mutation_cycles=1,
                          seed_sample=False)
    result = Search(policy, KeywordReward(["cat"]), TemplateMutator(), config).run("Say cat.")
    assert result.answer == "cat cat cat cat"
    starts = policy.calls("start")
    assert len(starts) == 1 and len(starts[0][1]) == 3
    assert all(donor == "cat cat" for _, _, donor in policy.calls("adopt"))
    assert policy.calls("adopt")  # the two losers took the winner's response after the first period
