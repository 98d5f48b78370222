"""Rewards on the packaged MiniLM: relevance, and the default relevance + distinct."""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains import Prompt, RelevanceReward
from darwin_chains.testing.contracts import RewardContract

PROMPT = Prompt.of("Give three tips for writing a clear email.")


def test_relevance_reward_prefers_on_topic_answers(minilm):
    reward = RelevanceReward(minilm)
    on, off, empty = reward.score(PROMPT, [
        "1. Use a clear subject line. 2. Keep the email short. 3. Proofread before you send it.",
        "Bananas are rich in potassium and grow in tropical climates.",
        "",
    ])
    assert on > off and on > empty
    assert asyncio.run(reward.ascore(PROMPT, ["Use a clear subject line."])) == pytest.approx(
        reward.score(PROMPT, ["Use a clear subject line."]))


def test_distinct_reward_penalises_loops_and_the_default_combines_it(minilm):
    from darwin_chains.rewards import DistinctReward, relevance_and_distinct

    loop = "Use a clear subject line. " * 6
    varied = "Use a clear subject line, keep the body short, and proofread the email before you send it."
    low, high = DistinctReward().score(PROMPT, [loop, varied])
    assert low < 0.5 < high == 1.0
    combined = relevance_and_distinct()
    assert combined.name == "relevance+distinct"
    assert combined.score(PROMPT, [varied])[0] == pytest.approx(
        RelevanceReward(minilm).score(PROMPT, [varied])[0] + 1.0, abs=1e-5)


class TestRelevanceRewardContract(RewardContract):
    @pytest.fixture
    def reward(self, minilm):
        return RelevanceReward(minilm)
