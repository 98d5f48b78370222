"""Rewards: score responses, partial ones included, against the original prompt. Higher is better.

Any callable `(instruction, response) -> float` is a reward too (see `darwin_chains.protocols.as_reward`).
"""
from __future__ import annotations

from .base import DistinctReward, RelevanceReward, WeightedReward, relevance_and_distinct
from .preference import MiniLMPreferenceReward, PreferenceReward

__all__ = ["DistinctReward", "MiniLMPreferenceReward", "PreferenceReward", "RelevanceReward", "WeightedReward", "relevance_and_distinct"]
