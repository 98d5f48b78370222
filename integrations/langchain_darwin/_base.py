"""What DarwinAlign and ChatDarwin share: the search's fields, validated at construction; its components, resolved
(and their models loaded) on first use, never at construction or import; and one call path (`Call`), so the two
answer, stream and report progress the same way."""
from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from darwin_chains import ConfigError, Mutator, Policy, Reward, Search, SearchConfig, SearchResult, defaults
from darwin_chains.adapters import (
    Components,
    GatedReward,
    check_components,
    cut,
    check_names,
    knobs,
    pydantic_fields,
    resolve,
    search_config,
)
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model

from ._convert import Request, to_message, to_request
from ._streaming import achunks, aresult, chunks, progress
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
        _check_policy(self.policy)
        check_components(self.search_config(), self.reward, self.mutator)
        _check_types(self.reward, self.mutator)

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
        return search_config({name: getattr(self, name) for name in SEARCH_FIELDS}, **overrides)

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

    def prepare(self, kwargs: dict[str, Any], schema: Any = None, stop: Optional[Sequence[str]] = None) -> Call:
        """One call: its options checked first (a typo fails before any model loads), then its search."""
        overrides, include_trace = self.options(kwargs)
        return Call(self.search(schema), overrides, include_trace, self.policy_name, stop, schema)

    def options(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Per-call search parameters, checked now so a typo fails before the search starts, and include_trace."""
        kwargs = dict(kwargs)
        include_trace = kwargs.pop("include_trace", self.include_trace)
        if not isinstance(include_trace, bool):
            raise ConfigError(f"include_trace must be True or False, got {include_trace!r}")
        overrides = resolve(kwargs)
        self.search_config(**overrides)
        return overrides, include_trace


@dataclass
class Call:
    """One call of the search, checked, and the four ways to answer it, which DarwinAlign and ChatDarwin share.

    `config` is the child config of the caller's run: its callbacks get the search's progress as custom events.
    `context`, if given, is the copied context the search runs in (ChatDarwin's, where LangChain sees the chat
    model's run as the running config); None runs it in the caller's."""

    search: Search
    overrides: dict[str, Any]
    include_trace: bool
    model_name: str
    stop: Optional[Sequence[str]] = None
    schema: Any = None  # a structured-output Schema: its instructions join the request, its grammar constrains it

    def request(self, input: Any) -> Request:
        """What the search answers; a schema's format instructions join the system message, and the schema
        constrains decoding where the policy can (`Prompt.constrained`)."""
        if self.schema is None:
            return to_request(input)
        request = to_request(self.schema.instruct(input))
        return Request(request.prompt.constrained(self.schema.json_schema), request.drafts)

    def run(self, request: Request, config: Optional[RunnableConfig],
            context: Optional[contextvars.Context] = None) -> AIMessage:
        run = functools.partial(self.search.run, request.prompt, drafts=request.drafts, on_event=progress(config),
                                **self.overrides)
        return self.message(context.run(run) if context is not None else run())

    async def arun(self, request: Request, config: Optional[RunnableConfig],
                   context: Optional[contextvars.Context] = None) -> AIMessage:
        events = self.search.astream(request.prompt, drafts=request.drafts, context=context, **self.overrides)
        return self.message(await aresult(events, config))

    def stream(self, request: Request, config: Optional[RunnableConfig],
               context: Optional[contextvars.Context] = None) -> Iterator[AIMessageChunk]:
        events = self.search.stream(request.prompt, drafts=request.drafts, context=context, **self.overrides)
        return chunks(events, config, self.model_name, self.include_trace)

    def astream(self, request: Request, config: Optional[RunnableConfig],
                context: Optional[contextvars.Context] = None) -> AsyncIterator[AIMessageChunk]:
        events = self.search.astream(request.prompt, drafts=request.drafts, context=context, **self.overrides)
        return achunks(events, config, self.model_name, self.include_trace)

    def message(self, result: SearchResult) -> AIMessage:
        """The answer, ended before the first stop sequence, with all the metadata."""
        return to_message(result, self.model_name, self.include_trace, cut(result.answer, self.stop))


def _check_policy(policy: Any) -> None:
    if policy is None or isinstance(policy, (str, BaseLanguageModel)):
        return
    if not all(hasattr(policy, a) for a in ("start", "extend", "adopt")):
        raise ConfigError(f"policy must be a darwin_chains Policy, a LangChain chat model or LLM, a policy spec or "
                          f"None; got {type(policy).__name__}")


def _check_types(reward: Any, mutator: Any) -> None:
    if not (reward is None or isinstance(reward, str) or hasattr(reward, "score") or isinstance(reward, Runnable)
            or callable(reward)):
        raise ConfigError(f"reward must be a darwin_chains Reward, a callable (instruction, response) -> float, a "
                          f"LangChain Runnable or a reward spec; got {type(reward).__name__}")
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
