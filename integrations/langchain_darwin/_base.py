"""What DarwinAlign and ChatDarwin share: the search's fields, validated at construction, and its components,
resolved (and their models loaded) on first use, never at construction or import."""
from __future__ import annotations

import os
import threading
from typing import Any, Optional

from darwin_chains import ConfigError, Sampling, Search, SearchConfig, defaults
from darwin_chains.protocols import Mutator, Policy, Reward, as_mutator, as_reward, component_name
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .policy import LangChainPolicy, model_name
from .reward import RunnableReward

_DEFAULTS = SearchConfig()
_LOADING = threading.Lock()  # two threads asking for the default policy at once load it once

#: The fields that configure the search, as in `darwin_chains.SearchConfig` (sampling given flat).
SEARCH_FIELDS = (
    "method", "mutants", "beams_per_mutant", "replacement_period", "keep_top", "mutation_cycles", "archive_size",
    "look_ahead", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "seed_sample", "reward_threshold",
    "time_budget",
)
#: LangChain's names for search parameters, accepted per call (`bind(max_tokens=64)`).
ALIASES = {"max_tokens": "max_new_tokens", "timeout": "time_budget"}


class DarwinFields(BaseModel):
    """The components and the search parameters; a bad value raises `darwin_chains.ConfigError` at construction."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    policy: Any = Field(default=None, exclude=True, description=(
        "A darwin_chains Policy, a LangChain chat model or LLM, a policy spec ('embedded', 'hf:PATH', "
        "'openai:MODEL@URL'), or None for $DARWIN_CHAINS_POLICY, else the embedded SmolLM2-135M-Instruct."))
    reward: Any = Field(default=None, exclude=True, description=(
        "A darwin_chains Reward, a callable (instruction, response) -> float, a LangChain Runnable taking "
        "{'instruction', 'response'}, a reward spec ('default', 'preference-minilm', 'relevance', 'judge', 'hf:PATH'), or None for "
        "'default' (the preference reward trained on GPT-4 Turbo judgments)."))
    mutator: Any = Field(default="template", exclude=True, description=(
        "A darwin_chains Mutator, a callable (instruction, n) -> list[str], 'template', 'llm' (the policy "
        "rewrites), 'none', or a LangChain chat model or LLM that writes the rewrites."))

    method: str = Field(default=_DEFAULTS.method, description="darwin, or a baseline: best-of-n, sample, "
                           "mutation-best-of-n, sample-replace.")
    mutants: int = Field(default=_DEFAULTS.mutants, description="Instruction variants per mutation cycle (n).")
    beams_per_mutant: int = Field(default=_DEFAULTS.beams_per_mutant, description="Beams per variant (nb).")
    replacement_period: int = Field(default=_DEFAULTS.replacement_period,
                                    description="Tokens between two rounds of scoring and replacement (m).")
    keep_top: int = Field(default=_DEFAULTS.keep_top, description="Beams kept at each replacement (the paper's k).")
    mutation_cycles: int = Field(default=_DEFAULTS.mutation_cycles, description="Mutation cycles.")
    archive_size: int = Field(default=_DEFAULTS.archive_size, description="Winners that may enter the archive.")
    look_ahead: int = Field(default=_DEFAULTS.look_ahead, description="Throw-away tokens before scoring (l).")
    max_new_tokens: int = Field(default=_DEFAULTS.max_new_tokens, alias="max_tokens",
                                description="Longest answer, in tokens.")
    temperature: float = Field(default=_DEFAULTS.sampling.temperature, description="Sampling temperature.")
    top_k: int = Field(default=_DEFAULTS.sampling.top_k, description="Sampling top-k (0: off).")
    top_p: float = Field(default=_DEFAULTS.sampling.top_p, description="Nucleus sampling mass (1: off).")
    seed: Optional[int] = Field(default=_DEFAULTS.seed, description="Seed of the search; None draws one per call.")
    seed_sample: bool = Field(default=_DEFAULTS.seed_sample,
                              description="Also decode one plain sample of the original instruction.")
    reward_threshold: Optional[float] = Field(default=_DEFAULTS.reward_threshold,
                                              description="Stop as soon as an answer scores this much.")
    time_budget: Optional[float] = Field(default=_DEFAULTS.time_budget, alias="timeout",
                                         description="Seconds; then the best answer so far is returned.")
    include_trace: bool = Field(default=False, description="Put the full trace in response_metadata['darwin'].")

    _resolved: Optional[tuple] = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        # Checked here rather than in a validator, so the error is darwin's ConfigError, not pydantic's wrapper.
        config = self.search_config()
        _check_policy(self.policy)
        _check_reward(self.reward)
        _check_mutator(self.mutator, config)

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Both Darwin runnables serialise: their search fields and any component given as a spec."""
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_darwin"]

    # -- configuration ------------------------------------------------------------------------------------------

    def search_config(self, **overrides: Any) -> SearchConfig:
        """The search these fields describe, with per-call overrides (LangChain aliases allowed)."""
        values = {name: getattr(self, name) for name in SEARCH_FIELDS}
        values.update({ALIASES.get(k, k): v for k, v in overrides.items()})
        sampling = Sampling(*(values.pop(k) for k in ("temperature", "top_k", "top_p")))
        return SearchConfig().replace(sampling=sampling, **values)

    @property
    def policy_name(self) -> str:
        """The policy's name, without loading it."""
        if self._resolved is not None:
            return component_name(self._resolved[0])
        if self.policy is None:
            return os.environ.get(defaults.POLICY_ENV) or "embedded"
        if isinstance(self.policy, str):
            return self.policy
        if isinstance(self.policy, BaseLanguageModel):
            return model_name(self.policy)
        return component_name(self.policy)

    @property
    def lc_attributes(self) -> dict[str, Any]:
        # Components are Python objects and are not serialised, except specs, which are plain strings.
        return {k: v for k in ("policy", "reward", "mutator") if isinstance(v := getattr(self, k), str)}

    # -- components ---------------------------------------------------------------------------------------------

    def components(self) -> tuple[Policy, Reward, Optional[Mutator]]:
        """Policy, reward and mutator, loaded once, at first use."""
        if self._resolved is None:
            with _LOADING:
                if self._resolved is None:
                    policy = _policy(self.policy)
                    self._resolved = (policy, _reward(self.reward, policy), _mutator(self.mutator, policy))
        return self._resolved

    def search(self) -> Search:
        """A Search over the components; per-call parameters are given to `run`/`arun`."""
        policy, reward, mutator = self.components()
        return Search(policy, reward, mutator, self.search_config())

    def overrides(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Per-call search parameters, checked now so a typo fails before the search starts."""
        overrides = {ALIASES.get(k, k): v for k, v in kwargs.items()}
        self.search_config(**overrides)
        return overrides


def _check_policy(policy: Any) -> None:
    if policy is None or isinstance(policy, (str, BaseLanguageModel)):
        return
    if not all(hasattr(policy, a) for a in ("start", "extend", "adopt")):
        raise ConfigError(f"policy must be a darwin_chains Policy, a LangChain chat model or LLM, a policy spec or "
                          f"None; got {type(policy).__name__}")


def _check_reward(reward: Any) -> None:
    if isinstance(reward, str):
        defaults.check(reward_spec=reward)
    elif not (reward is None or hasattr(reward, "score") or isinstance(reward, Runnable) or callable(reward)):
        raise ConfigError(f"reward must be a darwin_chains Reward, a callable (instruction, response) -> float, a "
                          f"LangChain Runnable or a reward spec; got {type(reward).__name__}")


def _check_mutator(mutator: Any, config: SearchConfig) -> None:
    if isinstance(mutator, str):
        defaults.check(mutator_spec=mutator)
    if mutator in (None, "none") and config.mutates:
        raise ConfigError(f"method {config.method!r} mutates instructions; give a mutator, or choose a method that "
                          "does not mutate (best-of-n, sample, sample-replace)")
    if not (mutator is None or isinstance(mutator, (str, BaseLanguageModel)) or hasattr(mutator, "mutate")
            or callable(mutator)):
        raise ConfigError(f"mutator must be a darwin_chains Mutator, a callable (instruction, n) -> list[str], "
                          f"'template', 'llm', 'none' or a LangChain model; got {type(mutator).__name__}")


def _policy(policy: Any) -> Policy:
    if policy is None or isinstance(policy, str):
        return defaults.policy(policy)
    if isinstance(policy, BaseLanguageModel):
        return LangChainPolicy(policy)
    return policy


def _reward(reward: Any, policy: Policy) -> Reward:
    if reward is None or isinstance(reward, str):
        return defaults.reward(reward, policy)
    if isinstance(reward, Runnable) and not hasattr(reward, "score"):
        return RunnableReward(reward)
    return as_reward(reward)


def _mutator(mutator: Any, policy: Policy) -> Optional[Mutator]:
    if mutator is None or isinstance(mutator, str):
        return defaults.mutator(mutator, policy) if mutator is not None else None
    if isinstance(mutator, BaseLanguageModel):
        return defaults.mutator("llm", LangChainPolicy(mutator))
    return as_mutator(mutator)
