"""What the algorithm asks for, as plain data: one class per kind of request, and nothing that calls anything.

The algorithm yields these and receives the replies; the driver (`driver.py`) is the one place that calls a
component, checks its reply and keeps the books.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..prompt import Prompt
from ..protocols import Beam


@dataclass
class Continuation:
    """Can the policy continue a partial response? Reply: a bool."""


@dataclass
class Start:
    """One beam per prompt, in order, nothing decoded yet. Reply: the beams."""

    prompts: list[Prompt]
    max_new_tokens: int


@dataclass
class Extend:
    """Up to `max_new_tokens` more tokens for each beam, in place. Reply: None."""

    beams: list[Beam]
    max_new_tokens: int
    seed: int
    look_ahead: bool = False  # throw-away tokens decoded only to score a partial response


@dataclass
class Adopt:
    """Each (beam, donor) pair: a beam that keeps `beam`'s prompt and continues `donor`'s response. Reply: those
    beams, in order."""

    pairs: list[tuple[Beam, Beam]]


@dataclass
class Mutate:
    """Exactly `n` variants of `instruction`. Reply: the variants (the instruction itself stands in for any the
    mutator could not give)."""

    instruction: str
    n: int
    seed: int


@dataclass
class Score:
    """Rewards of `responses` against the original prompt. Reply: one float per response, in order."""

    responses: list[str]


@dataclass
class Checkpoint:
    """Between steps: `settle` lists the texts every possible answer still starts with (None when a later cycle
    could still produce any answer), and `best` is the best finished candidate's reward. Reply: the budget that
    ran out, or None."""

    best: float
    settle: list[str] | None = None
    timed: bool = True  # False: only the reward threshold is checked


@dataclass
class Together:
    """Independent requests served at once (the seed sample decoding while the mutator writes). Reply: their
    replies, in order."""

    requests: list[Request] = field(default_factory=list)


Request = Continuation | Start | Extend | Adopt | Mutate | Score | Checkpoint | Together
