"""What DarwinAlign and ChatDarwin share: the search's fields, validated at construction, and its components,
resolved (and their models loaded) on first use, never at construction or import."""
from __future__ import annotations

from typing import Any, Optional

from darwin_chains import ConfigError, Search, SearchConfig, defaults
from darwin_chains.config import check_names, knobs, pydantic_fields, resolve
from darwin_chains.protocols import Mutator, Policy, Reward
from darwin_chains.rewards.gate import GatedReward
from darwin_chains.search.components import Components
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from .policy import LangChainPolicy
from .reward import RunnableReward


#: The fields that configure the search: one per knob of `darwin_chains.SearchConfig` (sampling given flat).
SEARCH_FIELDS = tuple(knob.name for knob in knobs())


class _Components(BaseModel):
    """The three components, first among the fields (as they come first in every signature)."""

    policy: Any = Field(default=None, exclude=True, description=(
        "A darwin_chains Policy, a LangChain chat model or LLM, a policy spec "
        f"({', '.join(map(repr, defaults.names('policy')))}), or None for $DARWIN_CHAINS_POLICY, else the embedded "
        "SmolLM2-135M-Instruct."))
    reward: Any = Field(default=None, exclude=True, description=(
        "A darwin_chains Reward, a callable (instruction, response), (prompt, response) or (instruction, response, "
        "context) -> float, a LangChain Runnable taking "
        f"{{'instruction', 'response', 'context'}}, a reward spec ({', '.join(map(repr, defaults.names('reward')))}), or None "
        "for 'default' (the preference reward trained on GPT-4 Turbo judgments)."))
    mutator: Any = Field(default="template", exclude=True, description=(
        "A darwin_chains Mutator, a callable (instruction, n) -> list[str], a mutator spec "
        f"({', '.join(map(repr, defaults.names('mutator')))}; 'llm' has the policy rewrite), or a LangChain chat "
        "model or LLM that writes the rewrites."))


# One field per knob, generated: a knob added to SearchConfig is a field here (and takes its aliases) at once.
_Searched = create_model("_Searched", __base__=_Components, __module__=__name__, **pydantic_fields())


class DarwinFields(_Searched):
    """The components and the search parameters; a bad value raises `darwin_chains.ConfigError` at construction."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    include_trace: bool = Field(default=False, description=(
        "Put the full trace in response_metadata['darwin']['trace']; also per call (invoke(x, include_trace=True))."))

    _components: Optional[Components] = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        fields = type(self).model_fields
        own = [n for name, f in fields.items() if name not in SEARCH_FIELDS for n in (name, f.alias) if n]
        check_names(data, also=own, face=type(self).__name__)  # darwin's ConfigError, as on every face
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
        """The search these fields describe, with per-call overrides (by name or alias)."""
        values = {name: getattr(self, name) for name in SEARCH_FIELDS}
        return SearchConfig().replace(**{**values, **resolve(overrides)})

    @property
    def policy_name(self) -> str:
        """The policy's name, without loading it."""
        return self._components.policy_name

    @property
    def lc_attributes(self) -> dict[str, Any]:
        # Components are Python objects and are not serialised, except specs, which are plain strings.
        return {k: v for k in ("policy", "reward", "mutator") if isinstance(v := getattr(self, k), str)}

    # -- components ---------------------------------------------------------------------------------------------

    def model_post_init(self, context: Any) -> None:
        # At construction, not first use: it loads nothing, and threads that call at once then share one loader.
        super().model_post_init(context)
        self._components = _components(self.policy, self.reward, self.mutator)

    def components(self) -> tuple[Policy, Reward, Optional[Mutator]]:
        """Policy, reward and mutator, loaded once, at first use."""
        return self._components.get()

    def search(self, schema: Any = None) -> Search:
        """A Search over the components; per-call parameters are given to `run`/`arun`. With a structured-output
        `Schema`, answers that do not validate lose to every one that does (`GatedReward`)."""
        policy, reward, mutator = self.components()
        if schema is not None:
            reward = GatedReward(reward, schema.valid, schema.viable)
        return Search(policy, reward, mutator, self.search_config())

    def options(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Per-call search parameters, checked now so a typo fails before the search starts, and include_trace."""
        kwargs = dict(kwargs)
        include_trace = kwargs.pop("include_trace", self.include_trace)
        if not isinstance(include_trace, bool):
            raise ConfigError(f"include_trace must be True or False, got {include_trace!r}")
        overrides = resolve(kwargs)
        self.search_config(**overrides)
        return overrides, include_trace


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
    config.check_mutator(mutator)
    if not (mutator is None or isinstance(mutator, (str, BaseLanguageModel)) or hasattr(mutator, "mutate")
            or callable(mutator)):
        raise ConfigError(f"mutator must be a darwin_chains Mutator, a callable (instruction, n) -> list[str], "
                          f"'template', 'llm', 'none' or a LangChain model; got {type(mutator).__name__}")


def _components(policy: Any, reward: Any, mutator: Any) -> Components:
    """LangChain models and Runnables wrapped as darwin components (cheap: nothing loads); specs stay specs."""
    rewriter = LangChainPolicy(mutator) if isinstance(mutator, BaseLanguageModel) else None
    return Components(
        LangChainPolicy(policy) if isinstance(policy, BaseLanguageModel) else policy,
        RunnableReward(reward) if isinstance(reward, Runnable) and not hasattr(reward, "score") else reward,
        "llm" if rewriter is not None else mutator,
        mutator_policy=rewriter,
    )
