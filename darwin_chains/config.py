"""One frozen, validated configuration per search, so a bad setting fails before any model loads.

Each knob is declared once, here, with its one-line doc, the paper's symbol, its aliases and its extra CLI flags.
`knobs()` lists them for every face (the CLI's flags, the LangChain and LlamaIndex fields, `serve`'s request
mapping), so adding a knob is one edit and every face accepts the same names.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import numbers
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

from .errors import ConfigError

Method = Literal["darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace"]
METHODS: tuple[str, ...] = ("darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace")
Ungrounded = Literal["answer", "flag", "abstain", "raise"]
UNGROUNDED: tuple[str, ...] = ("answer", "flag", "abstain", "raise")
DEFAULT_KEEP_TOP = 3  # the paper's k
#: Temperatures below this decode greedily, as vLLM's do (its _SAMPLING_EPS).
GREEDY_BELOW = 1e-5


def finite(value: Any) -> bool:
    """A real number within float range; `math.isfinite` raises OverflowError on an int past 1.8e308."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and abs(value) <= sys.float_info.max


def _knob(default: Any, doc: str, *, symbol: str | None = None, aliases: tuple[str, ...] = (),
          flags: tuple[str, ...] = ()) -> Any:
    """A dataclass field that carries what every face shows about it (flags: CLI flags besides `--field-name`)."""
    return dataclasses.field(default=default, metadata={"knob": {"doc": doc, "symbol": symbol, "aliases": aliases,
                                                                 "flags": flags}})


@dataclass(frozen=True)
class Sampling:
    """How the policy draws tokens. `temperature=0` decodes greedily; `top_k=0` and `top_p=1` switch those off."""

    temperature: float = _knob(0.7, f"Sampling temperature (0, or below {GREEDY_BELOW:g}, decodes greedily).")
    top_k: int = _knob(0, "Sampling top-k (0: off; not the replacement's keep_top).")
    top_p: float = _knob(0.9, "Nucleus sampling mass (1: off; the most likely token is always kept).")

    def __post_init__(self) -> None:
        _check_types(self)
        if not (finite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature!r:.40}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 switches it off), got {self.top_k}")
        if not (finite(self.top_p) and 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r:.40}")

    @property
    def greedy(self) -> bool:
        """Decode the most likely token: logits divided by a smaller temperature overflow float32 into inf/nan."""
        return self.temperature < GREEDY_BELOW


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of a search, with the paper's symbols (Hung et al. 2024, arXiv 2406.15193).

    Example:
        >>> SearchConfig(mutants=5, replacement_period=40, keep_top=3).beams
        5
        >>> SearchConfig().replace(max_tokens=64, temperature=0.3).max_new_tokens   # aliases, sampling flat
        64
    """

    method: Method = _knob("darwin", "darwin, or a baseline: best-of-n, sample, mutation-best-of-n, sample-replace.")
    mutants: int = _knob(5, "Instruction variants per mutation cycle; for the baselines, the number of samples N.",
                         symbol="n")
    beams_per_mutant: int = _knob(1, "Beams decoded per variant (the paper's best AlpacaEval run used 2).",
                                  symbol="nb")
    replacement_period: int = _knob(
        40, "Tokens decoded between two rounds of scoring and replacement (80 was best in the paper).",
        symbol="m", flags=("-m",))
    keep_top: int | None = _knob(
        None, "Beams that survive each replacement round (the paper's top-k; not the sampling top_k); "
        "None: 3, or one fewer than the beams when there are 3 or fewer.", symbol="k", flags=("-k",))
    mutation_cycles: int = _knob(1, "Mutation cycles, each with fresh variants of an archived instruction.",
                                 flags=("--cycles",))
    archive_size: int = _knob(
        2, "Winners of a cycle that may enter the archive in place of their parent (2 in the reference code).")
    look_ahead: int = _knob(0, "Throw-away tokens decoded before scoring a partial response (0: off).", symbol="l")
    max_new_tokens: int = _knob(256, "Longest answer, in tokens.", aliases=("max_tokens",))
    #: Its fields are knobs of their own, given flat everywhere (temperature=0.3).
    sampling: Sampling = dataclasses.field(default_factory=Sampling, metadata={"flat": Sampling})
    seed: int | None = _knob(0, "Seed of the search; None draws a fresh one per call.")
    seed_sample: bool = _knob(
        True, "Also decode one plain sample of the original instruction, as the reference code does.")
    reward_threshold: float | None = _knob(
        None, "Stop as soon as a finished answer scores at least this much (DSPy's Refine threshold).")
    time_budget: float | None = _knob(
        None, "Wall-clock seconds; when they run out the best answer so far is returned and marked.",
        aliases=("timeout",))
    stop: tuple[str, ...] = _knob((), "Answers end before the first of these texts (at most 4), which they exclude.",
                                  aliases=("stop_sequences",))
    stream_commit: bool = _knob(
        True, "A streamed search commits to its leading beam at the last cycle's first scoring round (k becomes 1, "
        "the seed sample and drafts retire), so text streams during the search; its answer can differ from an "
        "unstreamed one's. False: text streams only where every possible answer agrees, often only at the end.")
    on_ungrounded: Ungrounded = _knob(
        "answer", "When the prompt has context and the best answer states what the context does not support: answer "
        "(return it, with its verdict), flag (the best grounded candidate, else the best answer, flagged), abstain "
        "(the best grounded candidate, else 'The context does not say.'), raise (the best grounded candidate, else "
        "UngroundedError).")

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            object.__setattr__(self, "sampling", Sampling(**self.sampling))
        _check_types(self)
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.on_ungrounded not in UNGROUNDED:
            raise ConfigError(f"on_ungrounded must be one of {', '.join(UNGROUNDED)}; got {self.on_ungrounded!r:.40}")
        for name in ("mutants", "beams_per_mutant", "replacement_period", "mutation_cycles", "max_new_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        for name in ("archive_size", "look_ahead", "keep_top"):
            value = getattr(self, name)
            if not (value is None and name == "keep_top") and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.replaces and not 1 <= self.keep_top_used < self.beams:
            given = (f"got k={self.keep_top}" if self.keep_top is not None else
                     f"keep_top was not given, and its default ({DEFAULT_KEEP_TOP}, or beams - 1) cannot work")
            raise ConfigError(
                f"keep_top (k) must be at least 1 and smaller than the number of beams "
                f"(mutants x beams_per_mutant = {self.beams}) so that some beams can be replaced; {given}. "
                "Give at least 2 beams, or a method that does not replace (best-of-n, mutation-best-of-n)"
            )
        if self.time_budget is not None and not (finite(self.time_budget) and self.time_budget > 0):
            raise ConfigError(f"time_budget must be a positive number of seconds, got {self.time_budget!r:.40}")
        if self.reward_threshold is not None and not finite(self.reward_threshold):
            raise ConfigError(f"reward_threshold must be a finite number or None, got {self.reward_threshold!r:.40}")
        object.__setattr__(self, "stop", _stop_sequences(self.stop))

    @property
    def beams(self) -> int:
        """Beams decoded side by side in one cycle."""
        return 1 if self.method == "sample" else self.mutants * self.beams_per_mutant

    @property
    def keep_top_used(self) -> int:
        """`keep_top` as a search uses it: the beams kept each replacement round, by default 3 (fewer when there
        are 3 or fewer beams, so that `mutants=3` alone works)."""
        return self.keep_top if self.keep_top is not None else min(DEFAULT_KEEP_TOP, self.beams - 1)

    @property
    def mutates(self) -> bool:
        return self.method in ("darwin", "mutation-best-of-n")

    @property
    def replaces(self) -> bool:
        return self.method in ("darwin", "sample-replace")

    @property
    def evolves(self) -> bool:
        """Darwin proper: an archive of instructions evolves over the cycles, beside a plain seed sample."""
        return self.method == "darwin"

    @property
    def mutation_cycles_used(self) -> int:
        """`mutation_cycles` as a search runs them: only Darwin evolves an archive over several cycles; the
        baselines run once."""
        return self.mutation_cycles if self.evolves else 1

    def check_mutator(self, mutator: object) -> None:
        """Fail before any model loads when this method mutates instructions and there is no mutator.

        `mutator` is the component, or what names it: None and the spec "none" both mean no mutator.
        """
        if self.mutates and (mutator is None or (isinstance(mutator, str) and mutator.strip() == "none")):
            raise ConfigError(f"method {self.method!r} mutates instructions; give a mutator, or choose a method "
                              "that does not mutate (best-of-n, sample, sample-replace)")

    def replace(self, **changes: Any) -> SearchConfig:
        """A copy with some knobs changed, by name or alias; sampling knobs may be given flat (temperature=0.3)."""
        return dataclasses.replace(self, **_as_fields(changes, self.sampling))

    def to_dict(self) -> dict[str, Any]:
        """The knobs as given; `keep_top` as used (a trace shows what the search did)."""
        return {**dataclasses.asdict(self), "keep_top": self.keep_top_used if self.replaces else self.keep_top}


MAX_STOP = 4  # as OpenAI's API allows


def _stop_sequences(stop: Any) -> tuple[str, ...]:
    """One text or several, as a tuple (None: none), refused when empty or more than MAX_STOP."""
    stop = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise ConfigError(f"stop must be a text or a list of texts, got {stop!r:.80}")
    if any(not s for s in stop):
        raise ConfigError("stop sequences must not be empty: an empty one would end every answer before it starts")
    if len(stop) > MAX_STOP:
        raise ConfigError(f"at most {MAX_STOP} stop sequences are allowed, got {len(stop)}")
    return tuple(stop)


@dataclass(frozen=True)
class Knob:
    """One search parameter as every face shows it: a CLI flag, a LangChain or LlamaIndex field, a `serve` key."""

    name: str
    #: int, float, bool or str; `optional` says whether None is allowed too.
    type: type
    optional: bool
    default: Any
    doc: str
    #: The paper's symbol (n, nb, m, k, l), if it has one.
    symbol: str | None
    aliases: tuple[str, ...]
    #: Every CLI flag, `--field-name` first, then the extra flags and one per alias (a bool's `--no-` forms too).
    flags: tuple[str, ...]
    choices: tuple[str, ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The name, then the aliases: every face accepts each of them."""
        return (self.name, *self.aliases)

    @property
    def many(self) -> bool:
        """A tuple of texts (stop): a repeatable CLI flag; one text alone is taken as a one-element tuple."""
        return typing.get_origin(self.type) is tuple

    @property
    def annotation(self) -> Any:
        return Optional[self.type] if self.optional else self.type

    @property
    def help(self) -> str:
        """The doc, with the paper's symbol."""
        return f"{self.doc.rstrip('.')}; {self.symbol} in the paper." if self.symbol else self.doc

    def of(self, config: SearchConfig) -> Any:
        """This knob's value in `config`."""
        return getattr(config.sampling if self.name in _SAMPLING else config, self.name)

    def check(self, value: Any, key: str | None = None) -> Any:
        """`value` if it has this knob's type (a whole number, a number, true/false, a text), else a ConfigError
        naming `key` (where the face took it from; by default the knob's name). Every face checks types here.

        Numbers are checked as numbers first: a whole number past 1.8e308 overflows float arithmetic, and a whole
        number must fit in 64 bits (a seed, in 0 to 2**63 - 1).
        """
        key = key or self.name
        if value is None and self.optional or self.many:
            return value  # the config checks a text or a list of texts itself
        whole = isinstance(value, int) and not isinstance(value, bool)
        ok = {int: whole, float: finite(value), bool: isinstance(value, bool), str: isinstance(value, str)}[self.type]
        if self.name == "seed" and ok and not 0 <= value < 2 ** 63:
            raise ConfigError(f"{key} must be a whole number from 0 to 2**63 - 1, got {_shown(value)}")
        if self.type is int and ok and not -2 ** 63 <= value < 2 ** 63:
            raise ConfigError(f"{key} must be a whole number below 2**63 in size, got {_shown(value)}")
        if not ok:
            what = {int: "a whole number", bool: "true or false", str: "a text",
                    float: f"a finite number {_RANGE.get(self.name, 'from -1.8e308 to 1.8e308')}"}[self.type]
            raise ConfigError(f"{key} must be {what}{' or null' if self.optional else ''}, got {_shown(value)}")
        return value


#: The numbers each float knob takes (the configs check the same), for the message that refuses one.
_RANGE = {"temperature": "from 0 (greedy) to 1.8e308", "top_p": "above 0 and at most 1",
          "time_budget": "of seconds above 0 and at most 1.8e308"}


def _shown(value: Any) -> str:
    """A value for a message: a huge whole number by its size, anything else as JSON (or its repr), cut short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 24:
        return f"a whole number of {len(str(abs(value)))} digits"
    return json.dumps(value, default=repr)[:40]


def _check_types(config: Any) -> None:
    """Every knob of a config (SearchConfig's own, or Sampling's) has its type: ConfigError naming the first
    that does not."""
    for f in dataclasses.fields(config):
        knob = _BY_NAME.get(f.name)
        if knob is not None:
            knob.check(getattr(config, f.name))


def knobs() -> tuple[Knob, ...]:
    """Every knob of `SearchConfig`, sampling given flat, in declaration order."""
    return _KNOBS


def pydantic_fields() -> dict[str, tuple[Any, Any]]:
    """The knobs as pydantic fields for `pydantic.create_model`, each alias accepted: the adapters' search fields."""
    from pydantic import AliasChoices, BeforeValidator, Field  # imported here: only the pydantic faces need it

    def annotation(k: Knob) -> Any:  # a tuple knob also takes one text, or None for none, as the config does
        return typing.Annotated[k.annotation, BeforeValidator(_stop_sequences)] if k.many else k.annotation

    return {k.name: (annotation(k), Field(default=k.default, description=k.help,
                                          validation_alias=AliasChoices(*k.names))) for k in _KNOBS}


def check_names(names: Iterable[str], also: Iterable[str] = (), face: str = "the search") -> None:
    """Refuse names that are neither a knob (by name or alias) nor one of `also` (a face's own fields): the one
    ConfigError every face gives for a misspelt setting, with the closest names ("mutant (did you mean mutants?)")."""
    also = tuple(also)
    unknown = [n for n in names if n not in _NAMES and n not in also]
    if unknown:
        known = [*_NAMES, *also]
        named = [f"{n} (did you mean {' or '.join(c)}?)" if (c := difflib.get_close_matches(n, known, 3, 0.6)) else n
                 for n in unknown]
        own = f"; {face} also takes {', '.join(also)}" if also else ""
        raise ConfigError(f"unknown search parameter(s): {', '.join(named)}; the search parameters are "
                          f"{', '.join(k.name for k in _KNOBS)}{own}")


def resolve(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat search parameters keyed by knob name: aliases translated, unknown or repeated names refused."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    unknown = []
    for key, value in values.items():
        name = _NAMES.get(key)
        if name is None:
            unknown.append(key)
        elif name in out:
            raise ConfigError(f"{name} is given twice (as {given[name]} and {key}); give it once")
        else:
            out[name], given[name] = value, key
    check_names(unknown)
    return out


def _knobs_of(cls: type) -> list[Knob]:
    """Reads the knobs off a dataclass; a field without metadata fails here, at import, not in some face later."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "flat" in f.metadata:
            out += _knobs_of(f.metadata["flat"])
            continue
        if "knob" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no knob metadata; declare it with _knob(default, doc, ...) "
                            f"in darwin_chains/config.py so every face (CLI, LangChain, LlamaIndex, serve) gets it")
        meta, (kind, optional, choices) = f.metadata["knob"], _plain(hints[f.name])
        own = "--" + f.name.replace("_", "-")
        alias_flags = tuple("--" + a.replace("_", "-") for a in meta["aliases"])
        out.append(Knob(f.name, kind, optional, f.default, meta["doc"], meta["symbol"], tuple(meta["aliases"]),
                        (own, *meta["flags"], *alias_flags), choices))
    return out


def _plain(hint: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    """(int | None) -> (int, True, None); Literal["a", "b"] -> (str, False, ("a", "b"))."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return str, False, tuple(args)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner, True, None
    return hint, False, None


_KNOBS: tuple[Knob, ...] = tuple(_knobs_of(SearchConfig))
_FIELDS = frozenset(f.name for f in dataclasses.fields(SearchConfig))
_SAMPLING = frozenset(f.name for f in dataclasses.fields(Sampling))
_NAMES: dict[str, str] = {alias: k.name for k in _KNOBS for alias in k.names}
_BY_NAME: dict[str, Knob] = {k.name: k for k in _KNOBS}


def _as_fields(values: dict[str, Any], sampling: Any) -> dict[str, Any]:
    """Knobs by name or alias, sampling ones flat (temperature=0.3), as SearchConfig's own fields: the flat ones
    merged into `sampling` (or the `sampling` given among the values). Misspelt names are a ConfigError."""
    sampling = values.pop("sampling", sampling)
    if isinstance(sampling, Mapping):
        sampling = Sampling(**sampling)
    named = resolve(values)
    flat = {k: named.pop(k) for k in _SAMPLING if k in named}
    return named | {"sampling": dataclasses.replace(sampling, **flat)}


def _by_any_name(init: Any) -> Any:
    """SearchConfig's constructor, taking every name `replace` takes, and refusing a misspelt one with the same
    ConfigError as every other face, not a TypeError."""
    @functools.wraps(init)
    def __init__(self: SearchConfig, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **(kwargs if kwargs.keys() <= _FIELDS else _as_fields(kwargs, Sampling())))

    return __init__


SearchConfig.__init__ = _by_any_name(SearchConfig.__init__)  # type: ignore[method-assign]
