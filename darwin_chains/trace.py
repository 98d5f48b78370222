"""What a search did, as plain data. Printing, JSON, plots and framework metadata are all views of this."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Period:
    """One round of decoding `m` tokens, scoring every beam, and replacing the losers."""

    index: int
    tokens: int  # response length of the live beams after this period
    rewards: list[float]  # one per beam slot, against the original instruction
    top: list[int]  # the slots kept (top-k)
    replacements: list[tuple[int, int]]  # (replaced slot, slot whose response it adopted)
    finished: list[bool]
    seconds: float


@dataclass
class Cycle:
    """One mutation cycle: a parent from the archive, its variants, and the periods that decoded them."""

    index: int
    parent: str
    parent_reward: float | None
    instructions: list[str]  # per beam slot: the variant it decodes from (kept through replacement)
    periods: list[Period] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    final_rewards: list[float] = field(default_factory=list)
    top_counts: list[int] = field(default_factory=list)
    archive_before: list[dict[str, Any]] = field(default_factory=list)
    archive_after: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Candidate:
    """A finished (or, when a budget cut the search short, partial) response that could be the answer."""

    response: str
    reward: float
    source: str  # "draft", "seed-sample" or "cycle C slot S"
    instruction: str
    finished: bool = True


@dataclass
class Trace:
    method: str
    config: dict[str, Any]
    policy: str
    reward: str
    mutator: str | None
    granularity: str  # "token": replacement every m tokens; "response": the policy cannot continue a prefix
    prompt: dict[str, Any]
    seed: int
    cycles: list[Cycle] = field(default_factory=list)
    drafts: list[Candidate] = field(default_factory=list)
    seed_sample: Candidate | None = None
    answer_source: str | None = None
    tokens_generated: int = 0  # tokens the policy sampled, look-ahead included
    tokens_encoded: int = 0  # prompt and adopted-response tokens the policy had to encode
    look_ahead_tokens: int = 0
    policy_requests: int = 0
    policy_retries: int = 0
    reward_calls: int = 0  # responses sent to the reward
    reward_cache_hits: int = 0  # identical (instruction, response) pairs answered from the cache
    mutation_fallbacks: int = 0  # variants replaced by the original instruction
    seconds: float = 0.0
    stopped: str | None = None  # why the search ended early: "time_budget" or "reward_threshold"
    notes: list[str] = field(default_factory=list)  # choices the search made, in words

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> dict[str, Any]:
        """A compact view for framework metadata."""
        return {
            "method": self.method,
            "granularity": self.granularity,
            "cycles": len(self.cycles),
            "periods": sum(len(c.periods) for c in self.cycles),
            "replacements": sum(len(p.replacements) for c in self.cycles for p in c.periods),
            "answer_source": self.answer_source,
            "tokens_generated": self.tokens_generated,
            "tokens_encoded": self.tokens_encoded,
            "reward_calls": self.reward_calls,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "archive": [e["instruction"] for e in self.cycles[-1].archive_after] if self.cycles else [],
        }


@dataclass
class SearchResult:
    """The answer, its reward against the original instruction, and how it was found."""

    answer: str
    reward: float
    trace: Trace
    finished: bool = True  # False only when a budget stopped the search before any response finished

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "reward": self.reward, "finished": self.finished, "trace": self.trace.to_dict()}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)
