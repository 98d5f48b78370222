"""GatedReward: a hard gate on a reward. Model-free (a length reward and string checks), so it runs in milliseconds;
its use in a real search is in tests/langchain/test_structured.py."""
from __future__ import annotations

import asyncio
import random

import pytest
from darwin_chains import Prompt, RewardError, Search
from darwin_chains.rewards.gate import INVALID, VALID, VIABLE, GatedReward, tier, unsquash
from darwin_chains.testing.contracts import RewardContract
from darwin_chains.testing.scripted import ScriptedPolicy

PROMPT = Prompt.of("Say OK.")


def gate(reward=lambda instruction, response: float(len(response))) -> GatedReward:
    return GatedReward(reward, valid=lambda t: t.startswith("OK"), viable=lambda t: "OK".startswith(t.strip()))


def test_tiers_never_overlap_and_keep_the_rewards_order_within_a_tier():
    rng = random.Random(0)
    rewards = {f"r{i}": rng.uniform(-1e4, 1e4) for i in range(50)}
    texts = [p + t for t in rewards for p in ("OK ", "", "nope ")]
    g = gate(lambda instruction, response: rewards[response.split()[-1]])
    scores = dict(zip(texts, g.score(PROMPT, texts)))
    for text, score in scores.items():
        assert tier(score) == (VALID if text.startswith("OK") else INVALID)
        assert unsquash(score) == pytest.approx(rewards[text.split()[-1]], rel=1e-6)
    valid = sorted((t for t in texts if t.startswith("OK")), key=lambda t: rewards[t.split()[-1]])
    assert [scores[t] for t in valid] == sorted(scores[t] for t in valid)
    assert min(scores[t] for t in valid) > max(s for t, s in scores.items() if not t.startswith("OK"))


def test_a_viable_prefix_sits_between_valid_and_invalid():
    assert [tier(s) for s in gate().score(PROMPT, ["OK", "O", "", "no"])] == [VALID, VIABLE, VIABLE, INVALID]
    assert asyncio.run(gate().ascore(PROMPT, ["OK", "O", "no"])) == gate().score(PROMPT, ["OK", "O", "no"])


def test_the_search_answers_with_the_best_valid_response():
    policy = ScriptedPolicy(["a long, long answer that is not OK", "OK fine", "OK"])
    result = Search(policy, gate(), None, method="best-of-n", mutants=3, keep_top=1, max_new_tokens=16).run(PROMPT)
    assert result.answer == "OK fine" and tier(result.reward) == VALID


def test_a_bad_inner_reward_is_still_the_searchs_error():
    policy = ScriptedPolicy(["OK"], default="OK")
    with pytest.raises(RewardError):
        Search(policy, gate(lambda instruction, response: "0.5"), None, method="sample", max_new_tokens=4).run(PROMPT)


class TestGatedRewardContract(RewardContract):
    @pytest.fixture
    def reward(self):
        return GatedReward(lambda instruction, response: float(len(response)), valid=lambda t: t.endswith("."),
                           viable=lambda t: not t.endswith("!"))
