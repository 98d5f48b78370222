"""A hard gate on a reward: responses that fail a check lose to every response that passes, whatever their reward.

Structured output needs this: an answer that does not parse is useless however well it reads. A search scores
partial responses too, and a half-written JSON object never parses, so a second check, `viable` ("could this
prefix still become valid?"), keeps promising partial answers above hopeless ones while the beams decode.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..prompt import Prompt
from ..protocols import as_reward, ascore, component_name

#: The three tiers a gated score falls in: [0, 1) fails both checks, [1, 2) is viable, [2, 3) is valid.
INVALID, VIABLE, VALID = 0, 1, 2


def squash(reward: float) -> float:
    """A strictly increasing map of the reals onto (0, 1): order within a tier survives, tiers never overlap.

    arctan rather than the logistic: it still tells rewards apart in the hundreds, where exp saturates."""
    return 0.5 + math.atan(reward) / math.pi


class GatedReward:
    """Scores `tier + squash(reward)`: valid responses in (2, 3), viable prefixes in (1, 2), the rest in (0, 1).

    Example:
        >>> import json
        >>> gate = GatedReward(lambda instruction, response: len(response), valid=lambda text: text == "{}",
        ...                    viable=lambda text: "{}".startswith(text))
        >>> [round(s, 2) for s in gate.score(Prompt.of("JSON please"), ["{}", "{", "a long answer"])]
        [2.85, 1.75, 0.98]

    Args:
        reward: any reward (a Reward or a callable `(instruction, response) -> float`); it orders responses within
            a tier.
        valid: `text -> bool`, whether a finished response is acceptable (parses and validates against a schema).
        viable: `text -> bool`, whether a response, read as a prefix, could still become valid. None: only
            `valid` is checked, so every partial response sits in the bottom tier until it is valid.

    The search's answer is its best-scoring finished response, so it is valid whenever any candidate is; check
    `tier(result.reward) == VALID` (or re-run `valid`) to know. Scores are gated values, not the inner reward:
    `unsquash` recovers the reward from a score.
    """

    def __init__(self, reward: Any, valid: Callable[[str], bool], viable: Optional[Callable[[str], bool]] = None,
                 *, name: str | None = None):
        self.reward = as_reward(reward)
        self.valid, self.viable = valid, viable
        self.name = name or f"gated({component_name(self.reward)})"

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return self._gate(responses, self.reward.score(prompt, responses))

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        rewards = await ascore(self.reward, prompt, responses)
        return await asyncio.to_thread(self._gate, responses, rewards)

    def tier_of(self, response: str) -> int:
        if self.valid(response):
            return VALID
        return VIABLE if self.viable is not None and self.viable(response) else INVALID

    def _gate(self, responses: Sequence[str], rewards: Sequence[float]) -> list[float]:
        # The inner reward's output is checked by the search like any reward's: a gate never hides a bad value.
        return [self.tier_of(r) + squash(s) if isinstance(s, (int, float)) else s for r, s in zip(responses, rewards)]


def tier(score: float) -> int:
    """Which tier a gated score falls in (INVALID, VIABLE or VALID)."""
    return int(math.floor(score))


def unsquash(score: float) -> float:
    """The inner reward behind a gated score (exact up to float rounding)."""
    return math.tan((score - tier(score) - 0.5) * math.pi)
