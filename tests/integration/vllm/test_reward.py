"""ServedRewardModel against a real vLLM pooling server: the same scores as HFRewardModel in process.

The reward model is small and has random weights (built and saved by tests/support/vllm.py; no model hub here):
what is tested is that the served path reads exactly what the in-process one reads, pair by pair and in order.
"""
from __future__ import annotations

import asyncio

import pytest
import torch

from darwin_chains import Prompt, RewardError, defaults
from darwin_chains.rewards.hf import HFRewardModel

PROMPT = Prompt.of([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a prime."}])
RESPONSES = ["7 is prime.", "Bananas.", "", "Seven, which only one and itself divide. " * 30, "2", "Elev",
             "Eleven is a prime number because"]


def test_served_scores_match_the_in_process_reward_model_in_order(vllm_reward_url, vllm_reward_dir):
    """Partial responses too, over several requests of 3 pairs: each score within 1e-3 of HFRewardModel's."""
    served = defaults.reward(f"served:rm@{vllm_reward_url}?tokenizer={vllm_reward_dir}&batch_size=3")
    local = HFRewardModel.from_pretrained(vllm_reward_dir, device="cpu", dtype=torch.float32)
    expected, got = local.score(PROMPT, RESPONSES), served.score(PROMPT, RESPONSES)
    assert max(expected) - min(expected) > 0.5  # the scores differ enough for the match to mean something
    assert len(got) == len(RESPONSES)
    assert max(abs(a - b) for a, b in zip(expected, got)) < 1e-3, (expected, got)
    assert asyncio.run(served.ascore(PROMPT, RESPONSES)) == pytest.approx(got, abs=1e-6)
    reordered = RESPONSES[::-1]
    assert served.score(PROMPT, reordered) == pytest.approx(got[::-1], abs=1e-6)  # each score stays with its pair


def test_a_served_model_the_server_does_not_have_is_a_reward_error_naming_the_server(vllm_reward_url,
                                                                                      vllm_reward_dir):
    served = defaults.reward(f"served:no-such-model@{vllm_reward_url}?tokenizer={vllm_reward_dir}&attempts=1")
    with pytest.raises(RewardError, match=r"answered 404 .*classify|answered 404"):
        served.score(PROMPT, ["7"])
