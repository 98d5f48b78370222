"""Per-request caps that the operator sets and a client cannot raise: one search may cost a thousand completions.

    darwin-chains serve --max-mutants 8 --max-beams 16 --max-cycles 3 --max-answer-tokens 1024 --max-search-seconds 120

A request over a cap is a 400 that names the cap and the flag that raises it. Every search runs under the
operator's time budget (the smaller of `--time-budget` and `--max-search-seconds`); a client's `time_budget`
can only lower it, and `time_budget: null` never removes it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...config import SearchConfig
from ...errors import ConfigError


def _cap(default: Any, doc: str) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; `GET /v1/darwin/limits` shows them to clients.

    Example:
        >>> limits = Limits(max_mutants=4, max_search_seconds=60)
        >>> limits.time_budget(SearchConfig(time_budget=30), asked=None), limits.time_budget(SearchConfig(), asked=600)
        (30.0, 60.0)
        >>> limits.check(SearchConfig(mutants=5))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        darwin_chains.errors.ConfigError: mutants=5 is over this server's limit of 4 (max_mutants); ask for less, ...
    """

    max_mutants: int = _cap(8, "most instruction variants (or samples) a request may ask for")
    max_beams: int = _cap(16, "most beams one cycle may decode (mutants x beams_per_mutant)")
    max_cycles: int = _cap(3, "most mutation cycles a request may ask for")
    max_answer_tokens: int = _cap(1024, "most tokens an answer may have (max_tokens), and most look-ahead tokens")
    max_search_seconds: float = _cap(120.0, "wall-clock seconds any one search may run")
    max_body_bytes: int = _cap(1_000_000, "largest request body, in bytes; a larger one gets 413")
    max_body_seconds: float = _cap(30.0, "seconds a client may take to send a request body once its headers are in; "
                                   "a slower one gets 408")
    max_prompt_tokens: int = _cap(4096, "most tokens a request's conversation may have (as the policy's tokenizer "
                                  "counts them)")
    max_held_tokens: int = _cap(65536, "most tokens the running searches may hold cached in all (prompt and answer, "
                                "for every beam); a search that would pass it waits its turn")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{flag(f.name)} must be a positive number, got {value!r}")

    def check(self, config: SearchConfig) -> None:
        """Refuse a search over a cap, naming the cap and the flag that raises it."""
        asked = {"max_mutants": ("mutants", config.mutants), "max_beams": ("beams", config.beams),
                 "max_cycles": ("mutation_cycles", config.mutation_cycles_used),
                 "max_answer_tokens": ("max_tokens", max(config.max_new_tokens, config.look_ahead))}
        for cap, (what, value) in asked.items():
            if value > getattr(self, cap):
                raise ConfigError(f"{what}={value} is over this server's limit of {getattr(self, cap)} ({cap}); "
                                  f"ask for less, or the operator can raise it with {flag(cap)}")

    def check_size(self, prompt_tokens: int, held_tokens: int) -> None:
        """Refuse a prompt over the cap, or a search that alone would hold more cached tokens than all may."""
        if prompt_tokens > self.max_prompt_tokens:
            raise ConfigError(f"the conversation has {prompt_tokens:,} tokens, over this server's limit of "
                              f"{self.max_prompt_tokens:,} (max_prompt_tokens); shorten it, or the operator can raise "
                              f"it with {flag('max_prompt_tokens')}")
        if held_tokens > self.max_held_tokens:
            raise ConfigError(f"this search would hold {held_tokens:,} cached tokens (prompt and answer, for every "
                              f"beam), over this server's limit of {self.max_held_tokens:,} (max_held_tokens); ask "
                              f"for fewer mutants or tokens, or the operator can raise it with "
                              f"{flag('max_held_tokens')}")

    def time_budget(self, config: SearchConfig, asked: float | None) -> float:
        """The seconds a search may run: the operator's budget, lowered (never raised) by the client's."""
        budgets = [self.max_search_seconds, config.time_budget, asked]
        return min(float(b) for b in budgets if b is not None)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each cap with what it bounds and the flag that sets it: the limits view clients read."""
        return {f.name: {"value": getattr(self, f.name), "doc": f.metadata["doc"], "flag": flag(f.name)}
                for f in dataclasses.fields(self)}


def flag(cap: str) -> str:
    return "--" + cap.replace("_", "-")


def add_flags(parser: Any) -> None:
    """The caps as `darwin-chains serve` flags (an argparse parser or group)."""
    g = parser.add_argument_group("limits", "per-request caps a client cannot raise")
    for f in dataclasses.fields(Limits):
        kind = float if f.type in (float, "float") else int
        g.add_argument(flag(f.name), dest=f.name, type=kind, default=f.default, metavar="X" if kind is float else "N",
                       help=f"{f.metadata['doc']} (default: %(default)s)")


def from_args(args: Any) -> Limits:
    return Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
