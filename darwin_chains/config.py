"""One frozen, validated configuration per search, so a bad setting fails before any model loads."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError

Method = Literal["darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace"]
METHODS: tuple[str, ...] = ("darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace")


@dataclass(frozen=True)
class Sampling:
    """How the policy draws tokens. `temperature=0` decodes greedily; `top_k=0` and `top_p=1` switch those off."""

    temperature: float = 0.7
    top_k: int = 0
    top_p: float = 0.9

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 switches it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of a search, with the paper's symbols (Hung et al. 2024, arXiv 2406.15193).

    Example:
        >>> SearchConfig(mutants=5, replacement_period=40, keep_top=3).beams
        5
    """

    method: Method = "darwin"
    #: Instruction variants per mutation cycle (n; the paper's 5).
    mutants: int = 5
    #: Beams decoded per variant (nb; the paper's best AlpacaEval run used 2).
    beams_per_mutant: int = 1
    #: Tokens decoded between two rounds of scoring and replacement (m; 40 by default, 80 was best in the paper).
    replacement_period: int = 40
    #: Beams that survive each replacement round (the paper's top-k; not the sampling `top_k`).
    keep_top: int = 3
    #: Mutation cycles, each with a fresh set of variants of an archived instruction.
    mutation_cycles: int = 1
    #: Winners of a cycle that may enter the archive in place of their parent (2 in the reference code).
    archive_size: int = 2
    #: Throw-away tokens decoded before scoring a partial response (l; 0 switches look-ahead off).
    look_ahead: int = 0
    max_new_tokens: int = 256
    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    seed: int | None = 0
    #: Decode one plain sample of the original instruction as a candidate too, as the reference code does.
    seed_sample: bool = True
    #: Stop as soon as a finished answer scores at least this much (DSPy's `Refine` threshold).
    reward_threshold: float | None = None
    #: Wall-clock budget in seconds; when it runs out the best answer so far is returned and marked.
    time_budget: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        for name in ("mutants", "beams_per_mutant", "replacement_period", "mutation_cycles", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("archive_size", "look_ahead", "keep_top"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.replaces and not 1 <= self.keep_top < self.beams:
            raise ConfigError(
                f"keep_top (k) must be at least 1 and smaller than the number of beams "
                f"(mutants x beams_per_mutant = {self.beams}) so that some beams can be replaced; got k={self.keep_top}"
            )
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"time_budget must be a positive number of seconds, got {self.time_budget}")
        if isinstance(self.sampling, dict):
            object.__setattr__(self, "sampling", Sampling(**self.sampling))

    @property
    def beams(self) -> int:
        """Beams decoded side by side in one cycle."""
        return 1 if self.method == "sample" else self.mutants * self.beams_per_mutant

    @property
    def mutates(self) -> bool:
        return self.method in ("darwin", "mutation-best-of-n")

    @property
    def replaces(self) -> bool:
        return self.method in ("darwin", "sample-replace")

    @property
    def cycles(self) -> int:
        """Only Darwin evolves an archive over several cycles; the baselines run once."""
        return self.mutation_cycles if self.method == "darwin" else 1

    def replace(self, **changes: Any) -> SearchConfig:
        """A copy with some fields changed; sampling fields may be given flat (temperature=0.3)."""
        sampling = {k: changes.pop(k) for k in ("temperature", "top_k", "top_p") if k in changes}
        if sampling:
            changes["sampling"] = dataclasses.replace(changes.get("sampling", self.sampling), **sampling)
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown search parameter(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
