"""The archive of instructions that evolves across mutation cycles (§2.3 of the paper)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass
class Entry:
    instruction: str
    reward: float  # the reward its response earned when it entered; -inf for an original never sampled


def trace_reward(reward: float) -> float | None:
    """A reward as the trace shows it: None for an original never sampled, so the trace stays strict JSON."""
    return reward if math.isfinite(reward) else None


class Archive:
    """Starts as {original instruction}. Winners that beat their parent take the parent's place."""

    def __init__(self, original: str, reward: float = float("-inf")):
        self.entries = [Entry(original, reward)]

    def pick(self, rng: random.Random) -> Entry:
        """The parent of the next cycle, uniformly at random."""
        return rng.choice(self.entries)

    def update(self, parent: Entry, winners: list[Entry]) -> bool:
        """Put the winners whose reward beats `parent` in its place; True when the archive changed."""
        better: dict[str, Entry] = {}
        for w in winners:
            if w.reward > parent.reward and w.instruction not in better:
                better[w.instruction] = w
        if not better:
            return False
        at = self.entries.index(parent)
        keep = [e for e in self.entries if e is not parent and e.instruction not in better]
        self.entries = keep[:at] + list(better.values()) + keep[at:]
        return True

    def to_list(self) -> list[dict]:
        return [{"instruction": e.instruction, "reward": trace_reward(e.reward)} for e in self.entries]
