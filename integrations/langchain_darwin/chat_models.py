"""ChatDarwin: Darwin behind LangChain's chat model interface, for places that expect a BaseChatModel."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from operator import itemgetter
from typing import Any, Optional

from darwin_chains import ConfigError, PolicyError
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.callbacks.manager import AsyncRunManager
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import ensure_config, patch_config, set_config_context
from pydantic import ConfigDict, Field

from ._base import SEARCH_FIELDS, Call, DarwinFields
from .policy import LangChainPolicy, estimate_tokens
from .structured import METHODS, Schema

log = logging.getLogger(__name__)

#: The child config of a streamed call's run, from `stream`/`astream` to `_stream`/`_astream` (see `stream`).
_STREAMED: contextvars.ContextVar[Optional[RunnableConfig]] = contextvars.ContextVar("darwin_streamed", default=None)
#: Policies whose token counts are estimates, warned about once.
_ESTIMATED: set[str] = set()


class ChatDarwin(DarwinFields, BaseChatModel):
    """A chat model whose every answer is found by Darwin's reward-guided evolutionary search.

    Use it wherever LangChain expects a chat model; use `DarwinAlign` to put the search after a prompt in a chain
    (the two share every parameter and behave the same).

    Setup:
        make setup    # scripts/setup.sh: darwin-chains with this integration, and the embedded models (offline)

    Key init args (components): policy (alias model), reward, mutator, as in `DarwinAlign`. With no policy the
        model is $DARWIN_CHAINS_POLICY if set, else the embedded SmolLM2; with no reward, the "default" reward.
    Key init args (search): mutants, replacement_period, keep_top, mutation_cycles, max_new_tokens (alias
        max_tokens), temperature, seed, time_budget (alias timeout), method, ...; per call too
        (`chat.invoke(msgs, mutants=3)`). stop (alias stop_sequences), at construction or per call: every beam of the
        search ends before the first one, so the answer and its reward exclude it.
        A bad value raises `darwin_chains.ConfigError` at construction; unknown arguments are refused.

    Instantiate:
        >>> from langchain_darwin import ChatDarwin
        >>> chat = ChatDarwin(mutants=3, keep_top=1, replacement_period=8, max_tokens=48)

    Invoke:
        >>> chat.invoke([("system", "Answer briefly."), ("human", "Name two primary colours.")])

        A conversation that ends with an AI message hands that message in as a draft: the answer never scores
        below it.

    Stream: chunks of text that can no longer change, as it settles, then the rest (see `DarwinAlign`).
        >>> for chunk in chat.stream("Give three tips for writing a clear email."):
        ...     print(chunk.content, end="", flush=True)

    Async: `ainvoke`, `abatch`, `astream`; model work runs off the event loop. Calls made at once (`batch`,
    `abatch`) are searches side by side, and a local policy decodes their beams as one batch.

    Metadata:
        >>> msg = chat.invoke("Name two primary colours.")
        >>> msg.response_metadata["reward"], msg.response_metadata["darwin"]["replacements"]
        >>> msg.usage_metadata          # every token the search read and wrote, on the last chunk when streaming

    Metadata also holds response_metadata["finish_reason"]: "stop" when the answer ended by itself, "length"
    when max_new_tokens cut it off. include_trace=True, at construction or per call, adds the full trace.

    Progress: `invoke`, `ainvoke`, `stream` and `astream` send darwin.* custom events (cycle_started,
    period_scored, replacement, archive_updated, ...) to the chat model run's callbacks.

    Structured output: the best answer that validates, as an object (see `with_structured_output`).
        >>> from pydantic import BaseModel
        >>> class City(BaseModel):
        ...     name: str
        ...     country: str
        >>> chat.with_structured_output(City).invoke("Name a city in France.")

    Tools: with a LangChain chat model that calls tools as the policy, `bind_tools` lets it decide each turn; a
    final answer is refined by the search (see `bind_tools`). Other policies refuse, naming what would work.

    Token counts: `get_num_tokens` uses the policy's own tokenizer, so `trim_messages(token_counter=chat)` works
    offline.

    Not supported: non-text inputs. Darwin picks among text answers by their reward.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    policy: Any = Field(default=None, exclude=True, alias="model", description=DarwinFields.model_fields[
        "policy"].description)
    streaming: bool = Field(default=False, description="Use the streaming path even for invoke.")

    @property
    def _llm_type(self) -> str:
        return "darwin"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"policy": self.policy_name, **{name: getattr(self, name) for name in SEARCH_FIELDS}}

    def _get_ls_params(self, stop: Optional[list[str]] = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="darwin", ls_model_type="chat",
                                 ls_model_name=kwargs.get("model") or self.policy_name,
                                 ls_temperature=kwargs.get("temperature", self.temperature),
                                 ls_max_tokens=kwargs.get("max_tokens", kwargs.get("max_new_tokens",
                                                                                   self.max_new_tokens)))
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- token counts ---------------------------------------------------------------------------------------------

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids from the policy's own tokenizer (LangChain's default is GPT-2's, which is not here offline)."""
        if self.custom_get_token_ids is not None:
            return self.custom_get_token_ids(text)
        policy = self._components.policy()
        if isinstance(policy, LangChainPolicy):
            return policy.model.get_token_ids(text)
        if (tokenizer := getattr(policy, "tokenizer", None)) is not None:
            return list(tokenizer.encode(text, add_special_tokens=False))
        raise PolicyError(f"policy {self.policy_name!r} has no tokenizer to give token ids; give it one (e.g. "
                          "OpenAIPolicy(..., tokenizer=...)) or pass ChatDarwin(custom_get_token_ids=...)")

    def get_num_tokens(self, text: str) -> int:
        """Tokens in `text` by the policy's tokenizer (what `trim_messages(..., token_counter=chat)` counts with).

        A policy without a tokenizer (a remote one given none) is counted at about 4 characters a token, with a
        warning naming the fix."""
        try:
            return len(self.get_token_ids(text))
        except PolicyError as exc:
            if self.policy_name not in _ESTIMATED:
                _ESTIMATED.add(self.policy_name)
                log.warning("%s; counting about 4 characters a token meanwhile", exc)
            return estimate_tokens(text)

    # -- tools and structured output ------------------------------------------------------------------------------

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        """Tools for the policy to call: it decides each turn, and a turn that calls tools comes back as it is.
        When it answers instead, its answer is a draft and the search refines it (tool results are context).

        Needs a LangChain chat model with tool calling as the policy; any other policy is a ConfigError naming
        what would work."""
        model = _tool_model(self.policy)
        if model is None:
            raise ConfigError(
                f"ChatDarwin.bind_tools needs a policy that can call tools: a LangChain chat model with tool calling "
                f"(ChatDarwin(policy=ChatOpenAI(...)), say); the policy {self.policy_name!r} writes text only. With "
                "this policy, run the agent on a tool-calling model and refine its final answer with DarwinRefine "
                "(a LangGraph node) or DarwinRefineMiddleware (create_agent)")
        options = {"tool_choice": tool_choice, **kwargs} if tool_choice is not None else kwargs
        model.bind_tools(tools, **options)  # the policy's own checks of the tools, now rather than at first call
        return self.bind(tools=list(tools), tool_options=options)

    def with_structured_output(self, schema: Any = None, *, include_raw: bool = False, method: Optional[str] = None,
                               strict: Optional[bool] = None, **kwargs: Any) -> Runnable:
        """The search's answer as an object of `schema` (a pydantic model, a TypedDict or a JSON schema dict).

        The schema's format instructions go into the system message (mutation never rewrites them), a local
        policy decodes every beam under the schema's grammar, and "parses and validates" becomes a hard gate on
        the reward for policies that cannot: an invalid answer loses to every valid one, so the result is the best
        valid answer. When none validates, `StructuredOutputError` (an
        `OutputParserException`) carries the best text. Every `method` (json_schema, json_mode,
        function_calling) runs this same search over JSON text, and answers are always validated (`strict`).
        With include_raw=True the result is {"raw": message, "parsed": object or None, "parsing_error": ...}.
        """
        if kwargs:
            raise ConfigError(f"unknown with_structured_output argument(s): {', '.join(sorted(kwargs))}")
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(m for m in METHODS if m)}; got {method!r}")
        spec = Schema(schema)  # a schema that cannot work fails here
        llm = self.bind(response_format=spec.json_schema if schema is None else schema, ls_structured_output_format={
            "kwargs": {"method": method or "json_schema"}, "schema": spec.json_schema})
        parser = RunnableLambda(spec.parse_message, name=f"parse {spec.name}")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        # A tool turn or a structured answer is one message, known when the search ends: nothing to stream.
        if kwargs.get("tools") is not None or kwargs.get("response_format") is not None:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    # -- streaming: LangChain gives _stream no run manager, so the run is set up here --------------------------

    def stream(self, input: Any, config: Optional[RunnableConfig] = None, *, stop: Optional[list[str]] = None,
               **kwargs: Any) -> Iterator[AIMessageChunk]:
        config, child = _streamed_run(config, CallbackManager)
        _STREAMED.set(child)
        try:
            yield from super().stream(input, config, stop=stop, **kwargs)
        finally:
            _STREAMED.set(None)

    async def astream(self, input: Any, config: Optional[RunnableConfig] = None, *,
                      stop: Optional[list[str]] = None, **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        config, child = _streamed_run(config, AsyncCallbackManager)
        _STREAMED.set(child)
        try:
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
        finally:
            _STREAMED.set(None)

    # -- BaseChatModel's hooks ----------------------------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        (call, tools, tool_options), config = self._call(kwargs, stop), _child_config(run_manager)
        if tools is not None:
            reply = _tool_model(self.policy).bind_tools(tools, **tool_options).invoke(messages, config)
            if reply.tool_calls:
                return _generated(reply)
            messages = [*messages, AIMessage(reply.text)]  # the policy's answer: a draft for the search
        request = call.request(messages)
        with _context(config) as context:
            return _generated(call.run(request, config, context))

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                         **kwargs: Any) -> ChatResult:
        # The first call loads models: off the event loop.
        call, tools, tool_options = await asyncio.to_thread(self._call, kwargs, stop)
        config = _child_config(run_manager)
        if tools is not None:
            reply = await _tool_model(self.policy).bind_tools(tools, **tool_options).ainvoke(messages, config)
            if reply.tool_calls:
                return _generated(reply)
            messages = [*messages, AIMessage(reply.text)]
        request = call.request(messages)
        with _context(config) as context:
            return _generated(await call.arun(request, config, context))

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        config = _child_config(run_manager) if run_manager is not None else _STREAMED.get()
        _STREAMED.set(None)  # this run's: a later call in this context is another run
        call, _, _ = self._call(kwargs, stop)
        request = call.request(messages)
        with _context(config) as context:
            for chunk in call.stream(request, config, context):
                yield ChatGenerationChunk(message=chunk)

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        config = _child_config(run_manager) if run_manager is not None else _STREAMED.get()
        _STREAMED.set(None)
        call, _, _ = await asyncio.to_thread(self._call, kwargs, stop)
        request = call.request(messages)
        with _context(config) as context:
            async for chunk in call.astream(request, config, context):
                yield ChatGenerationChunk(message=chunk)

    def _call(self, kwargs: dict[str, Any], stop: Optional[list[str]]) -> tuple[Call, Optional[list[Any]], dict]:
        """One call's options, checked before anything runs (tools, a schema, include_trace, search parameters),
        and the tools with their options, for the policy to call."""
        kwargs = dict(kwargs)
        tools, tool_options, schema = kwargs.pop("tools", None), kwargs.pop("tool_options", {}), kwargs.pop(
            "response_format", None)
        spec = Schema(schema) if schema is not None else None
        return self.prepare(_with_stop(kwargs, stop), spec, stop or self.stop), tools, tool_options


def _generated(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _tool_model(policy: Any) -> Optional[BaseChatModel]:
    """The LangChain chat model behind the policy, if it implements tool calling."""
    model = policy.model if isinstance(policy, LangChainPolicy) else policy
    if isinstance(model, BaseChatModel) and type(model).bind_tools is not BaseChatModel.bind_tools:
        return model
    return None


def _streamed_run(config: Optional[RunnableConfig], manager_type: type) -> tuple[RunnableConfig, RunnableConfig]:
    """The config for a streamed call with its run id fixed in advance, and the child config under that run
    (callbacks for the search's runs and progress events), as `_child_config` makes from a run manager."""
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid.uuid4()
    manager = manager_type.configure(inheritable_callbacks=config.get("callbacks"),
                                     inheritable_tags=config.get("tags"), inheritable_metadata=config.get("metadata"))
    manager.parent_run_id = run_id
    return {**config, "run_id": run_id}, patch_config(config, callbacks=manager)


def _with_stop(kwargs: dict[str, Any], stop: Optional[list[str]]) -> dict[str, Any]:
    """LangChain's per-call `stop` is the search's `stop` knob: beams end there, in the core."""
    return {**kwargs, "stop": stop} if stop else kwargs


def _child_config(run_manager: Any) -> Optional[RunnableConfig]:
    """Callbacks under this chat model's run: for the runs the search starts (a Runnable reward, a LangChain
    policy) and for its progress events. None when LangChain gave no run manager."""
    if run_manager is None:
        return None
    manager = (AsyncCallbackManager if isinstance(run_manager, AsyncRunManager) else CallbackManager)(
        handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return patch_config(ensure_config(), callbacks=manager)  # the caller's configurable, limits etc. still apply


def _context(config: Optional[RunnableConfig]) -> contextlib.AbstractContextManager[contextvars.Context]:
    """A context in which LangChain sees `config` as the running config (or the caller's, unchanged)."""
    return set_config_context(config) if config is not None else contextlib.nullcontext(contextvars.copy_context())
