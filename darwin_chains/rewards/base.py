"""Model-free combinators and the embedding relevance reward."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..embedded.embedder import UsesEmbedder
from ..errors import ConfigError
from ..prompt import Prompt
from ..protocols import Reward, as_reward, ascore, component_name


class WeightedReward:
    """A weighted sum of rewards, e.g. a reward model plus a small relevance term.

    Example:
        >>> WeightedReward([(reward_model, 1.0), (RelevanceReward(), 0.5)])
    """

    def __init__(self, parts: Sequence[tuple[Any, float]]):
        if not parts:
            raise ConfigError("WeightedReward needs at least one (reward, weight) pair")
        self.parts = [(as_reward(r), float(w)) for r, w in parts]
        self.name = " + ".join(f"{w:g}*{component_name(r)}" for r, w in self.parts)

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        total = [0.0] * len(responses)
        for reward, weight in self.parts:
            for i, s in enumerate(reward.score(prompt, responses)):
                total[i] += weight * s
        return total

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        scores = await asyncio.gather(*(ascore(r, prompt, responses) for r, _ in self.parts))
        return [sum(w * s[i] for (_, w), s in zip(self.parts, scores)) for i in range(len(responses))]


class RelevanceReward(UsesEmbedder):
    """Cosine similarity between the instruction and the response in a sentence encoder's space.

    Cheap and robust on partial responses: it rewards staying on topic, not being correct or helpful.
    """

    name = "relevance-minilm"

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return self.embedder.similarity(prompt.instruction, list(responses))

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, prompt, responses)


class DistinctReward:
    """Share of distinct word trigrams in the response: low for the loops small models fall into.

    Meaningless alone (non-repeating gibberish scores 1.0); useful beside a reward that checks content.
    """

    name = "distinct-3gram"

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return [_distinct_trigrams(r) for r in responses]


def _distinct_trigrams(text: str) -> float:
    words = text.split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(set(grams)) / len(grams) if grams else 1.0


def relevance_and_distinct() -> WeightedReward:
    """On topic and not looping: the best simple reward measured for the embedded model
    (benchmarks/reward/reward_check.py)."""
    reward = WeightedReward([(RelevanceReward(), 1.0), (DistinctReward(), 1.0)])
    reward.name = "relevance+distinct"
    return reward


__all__ = ["Reward", "WeightedReward", "RelevanceReward", "DistinctReward", "relevance_and_distinct"]
