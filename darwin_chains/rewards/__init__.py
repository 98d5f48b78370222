"""Rewards: score responses, partial ones included, against the original prompt. Higher is better.

A callable is a reward too: `(instruction, response)`, `(prompt, response)` or `(instruction, response, context)`
-> float (see `darwin_chains.protocols.CallableReward`). The default reward adds a groundedness term when the
prompt has context (`grounding.Groundedness`).
"""
from __future__ import annotations

from .base import DistinctReward, RelevanceReward, WeightedReward, relevance_and_distinct
from .gate import GatedReward
from .grounding import Groundedness, Verdict
from .preference import MiniLMPreferenceReward, PreferenceReward

__all__ = ["DistinctReward", "GatedReward", "Groundedness", "MiniLMPreferenceReward", "PreferenceReward",
           "RelevanceReward", "Verdict", "WeightedReward", "relevance_and_distinct"]
