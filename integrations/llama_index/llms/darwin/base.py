"""DarwinLLM: any darwin_chains policy behind LlamaIndex's LLM interface, every answer found by a Darwin search.

The wrapper is thin. It turns LlamaIndex messages into a `darwin_chains.Prompt`, runs `Search.run` (or `arun`), and
turns the `SearchResult` back into a response. Three LlamaIndex-specific choices live here:

- **Context protection.** `_get_messages` is where `predict`/`stream`/`apredict`/`astream` (the calls every query
  and chat engine makes) format a template with its variables. There the query is marked, so mutation rewrites
  only the query and the retrieved context reaches every beam verbatim.
- **Streaming** commits the text the search has settled (the prefix every possible answer shares) as it grows,
  then the rest when the search ends; the deltas always add up to the answer.
- **Tracing.** The usual LLM callbacks and instrumentation events, plus one event per step of the search
  (`llama_index.llms.darwin.events`).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Dict, List, Optional, Tuple

from darwin_chains import ConfigError, Mutator, Policy, Prompt, Reward, Search, SearchConfig, SearchResult, defaults
from darwin_chains.protocols import as_mutator, as_reward, component_name
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

from .events import to_event
from .utils import SENTINEL, delta, metadata, request_variable, sentinel_start, tag_request, to_prompt

log = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

_DEFAULTS = SearchConfig()
#: The DarwinLLM fields that configure the search; each may also be given per call (`llm.chat(msgs, mutants=3)`).
SEARCH_FIELDS = (
    "method", "mutants", "beams_per_mutant", "replacement_period", "keep_top", "mutation_cycles", "archive_size",
    "look_ahead", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "seed_sample", "reward_threshold",
    "time_budget",
)
Chunk = Tuple[str, str, Optional[SearchResult]]  # (text so far, delta, the result on the last chunk)
_LOADING = threading.Lock()  # module-level, not per instance: LlamaIndex deep-copies LLMs, and locks cannot be copied


class DarwinLLM(LLM):
    """A LlamaIndex LLM whose answers come from Darwin's reward-guided evolutionary search.

    Setup:
        pip install darwin-chains          # the embedded SmolLM2 is the default policy

    Key init args (components, the same as the core's):
        policy: a darwin_chains Policy, a policy spec ("embedded", "hf:PATH", "openai:MODEL@URL") or None for
            $DARWIN_CHAINS_POLICY / the embedded SmolLM2; loaded at first use.
        reward: a Reward, a callable (instruction, response) -> float, or a spec ("default", "relevance",
            "judge", "hf:PATH").
        mutator: a Mutator, a callable (instruction, n) -> list[str], "template" (default), "llm" or "none".
    Key init args (the search, as in `darwin_chains.SearchConfig`):
        mutants, replacement_period, keep_top, mutation_cycles, max_new_tokens, temperature, seed, ...

    Instantiate, invoke, stream, async:
        >>> from llama_index.llms.darwin import DarwinLLM
        >>> llm = DarwinLLM(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48)
        >>> response = llm.complete("Give three tips for writing a clear email.")
        >>> for chunk in llm.stream_complete("Name two primary colours."):
        ...     print(chunk.delta, end="")
        >>> response = await llm.achat([ChatMessage(role="user", content="Why is the sky blue?")])

    What you get back: `response.additional_kwargs` holds the answer's `reward` (against the original
    instruction), `finished` and the `trace` summary; `response.raw` is the full `darwin_chains.SearchResult`.
    `llm.metadata` reports the policy's context window and name. Per call, `drafts=[...]` adds candidate answers
    (the answer never scores below them), and any search field overrides the instance's value.
    """

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
    max_new_tokens: int = Field(default=_DEFAULTS.max_new_tokens, description="Longest answer, in tokens.")
    temperature: float = Field(default=_DEFAULTS.sampling.temperature, description="Sampling temperature.")
    top_k: int = Field(default=_DEFAULTS.sampling.top_k, description="Sampling top-k (0: off).")
    top_p: float = Field(default=_DEFAULTS.sampling.top_p, description="Nucleus sampling mass (1: off).")
    seed: Optional[int] = Field(default=_DEFAULTS.seed, description="Seed of the search; None draws one.")
    seed_sample: bool = Field(default=_DEFAULTS.seed_sample,
                              description="Also decode one plain sample of the original instruction.")
    reward_threshold: Optional[float] = Field(default=_DEFAULTS.reward_threshold,
                                              description="Stop as soon as an answer scores this much.")
    time_budget: Optional[float] = Field(default=_DEFAULTS.time_budget,
                                         description="Seconds; then the best answer so far is returned.")

    _policy: Any = PrivateAttr(default=None)
    _policy_spec: Optional[str] = PrivateAttr(default=None)
    _reward: Any = PrivateAttr(default=None)
    _mutator: Any = PrivateAttr(default=None)

    def __init__(
        self,
        policy: Policy | str | None = None,
        reward: Reward | Callable[[str, str], float] | str | None = None,
        mutator: Mutator | Callable[[str, int], Sequence[str]] | str | None = "template",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        config = self.search_config()  # fails here, before any model loads, on a bad value
        if isinstance(policy, str) or policy is None:
            self._policy_spec = policy
        elif isinstance(policy, Policy):
            self._check_context(policy)
            self._policy = policy
        else:
            raise ConfigError(f"policy must be a darwin_chains Policy or a policy spec, got {type(policy).__name__}")
        if isinstance(reward, str):
            defaults.check(reward_spec=reward)
        self._reward = reward if isinstance(reward, str) or reward is None else as_reward(reward)
        if isinstance(mutator, str):
            defaults.check(mutator_spec=mutator)
        if mutator in (None, "none") and config.mutates:
            raise ConfigError(f"method {config.method!r} mutates instructions; give a mutator or choose a method "
                              "that does not mutate (best-of-n, sample, sample-replace)")
        self._mutator = mutator if isinstance(mutator, str) or mutator is None else as_mutator(mutator)

    @classmethod
    def class_name(cls) -> str:
        return "DarwinLLM"

    # -- components and configuration ---------------------------------------------------------------------------

    def search_config(self, **overrides: Any) -> SearchConfig:
        """The search this LLM runs, with per-call overrides; raises ConfigError on a value that cannot work."""
        return SearchConfig().replace(**{**{f: getattr(self, f) for f in SEARCH_FIELDS}, **overrides})

    @property
    def policy(self) -> Policy:
        """The darwin_chains policy, loaded (once) at first use."""
        if self._policy is None:
            with _LOADING:
                if self._policy is None:
                    policy = defaults.policy(self._policy_spec)
                    self._check_context(policy)
                    self._policy = policy
        return self._policy

    def _components(self) -> Tuple[Policy, Reward, Optional[Mutator]]:
        """Policy, reward and mutator, resolving specs (and loading models) on first use."""
        policy = self.policy
        if self._reward is None or isinstance(self._reward, str):
            self._reward = defaults.reward(self._reward, policy)
        if isinstance(self._mutator, str):
            self._mutator = defaults.mutator(self._mutator, policy)
        return policy, self._reward, self._mutator

    def _check_context(self, policy: Policy) -> None:
        """Fail early when the context window cannot hold the answer plus even the shortest prompt."""
        window = policy.max_context
        if not window:
            return
        floor = len(policy.encode(Prompt.of("Hi"))) if hasattr(policy, "encode") else 1
        if self.max_new_tokens + floor > window:
            raise ConfigError(
                f"max_new_tokens={self.max_new_tokens:,} leaves no room for a prompt: {component_name(policy)}'s "
                f"context window is {window:,} tokens and even a one-word prompt takes {floor}; "
                f"set max_new_tokens to at most {window - floor:,}"
            )

    @property
    def metadata(self) -> LLMMetadata:
        """Taken from the policy; an unknown context window falls back to LlamaIndex's default (3,900 tokens)."""
        policy = self.policy
        return LLMMetadata(
            context_window=policy.max_context or DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=False,
            model_name=component_name(policy),
        )

    def to_payload(self) -> Dict[str, Any]:
        """What traces record about this LLM. It never loads the policy, so an async first call cannot block."""
        payload: Dict[str, Any] = {"class_name": self.class_name(), "search": self.search_config().to_dict()}
        if self._policy is not None:
            payload.update(self.metadata.model_dump())
        else:
            payload["policy"] = self._policy_spec or "default"
        return payload

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> List[ChatMessage]:
        # predict, stream, apredict and astream all format their template here: the one place that still knows
        # which variable is the query and which is retrieved context.
        messages = super()._get_messages(prompt, **prompt_args)
        variables = {**prompt.kwargs, **prompt_args}
        key = request_variable(variables)
        if key is None:
            return messages
        probe = super()._get_messages(prompt, **{**prompt_args, key: SENTINEL})  # where the query lands
        return tag_request(messages, variables, start=sentinel_start(probe))

    # -- the one implementation every call shares ---------------------------------------------------------------

    def _prepare(self, kwargs: Dict[str, Any]) -> Tuple[Search, List[str]]:
        drafts = list(kwargs.pop("drafts", None) or ())
        overrides = {k: v for k, v in kwargs.items() if k in SEARCH_FIELDS}
        policy, reward, mutator = self._components()
        return Search(policy, reward, mutator, self.search_config(**overrides)), drafts

    def _completion_prompt(self, prompt: str) -> Prompt:
        # The policy applies its own chat template, so `formatted` and completion_to_prompt have nothing to do.
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return Prompt.of([*system, {"role": "user", "content": prompt}])

    @staticmethod
    def _emit(kind: str, data: Dict[str, Any]) -> None:
        event = to_event(kind, data)
        if event is not None:
            dispatcher.event(event)

    def _run(self, prompt: Prompt, kwargs: Dict[str, Any]) -> SearchResult:
        search, drafts = self._prepare(kwargs)
        return search.run(prompt, drafts=drafts, on_event=self._emit)

    async def _arun(self, prompt: Prompt, kwargs: Dict[str, Any]) -> SearchResult:
        search, drafts = await asyncio.to_thread(self._prepare, kwargs)  # a first call loads models: off the loop
        return await search.arun(prompt, drafts=drafts, on_event=self._emit)

    def _stream(self, prompt: Prompt, kwargs: Dict[str, Any], context: contextvars.Context) -> Iterator[Chunk]:
        """Settled text as it grows, then the rest. The search runs in a worker thread that reports through a queue.

        `context` is the caller's, taken when the stream was asked for: LlamaIndex closes the call's span when it
        returns the generator, and the search's events belong to that span, not to whoever iterates later.
        """
        search, drafts = self._prepare(kwargs)
        updates: queue.SimpleQueue = queue.SimpleQueue()
        abandoned = threading.Event()

        def on_event(kind: str, data: Dict[str, Any]) -> None:
            if abandoned.is_set():  # the reader went away: stop at the next step instead of decoding for no one
                raise _Abandoned
            self._emit(kind, data)
            if kind == "settled":
                updates.put(data["text"])

        def work() -> None:
            try:
                updates.put(_Done(search.run(prompt, drafts=drafts, on_event=on_event)))
            except BaseException as exc:  # handed to the reader, who raises it
                updates.put(_Done(error=exc))

        worker = threading.Thread(target=context.run, args=(work,), name="darwin-search", daemon=True)
        worker.start()
        chunks = _Chunks()
        try:
            while not isinstance(item := updates.get(), _Done):
                yield chunks.settled(item)
            yield chunks.final(item.value())
        finally:
            abandoned.set()

    async def _astream(
        self, prompt: Prompt, kwargs: Dict[str, Any], context: contextvars.Context
    ) -> AsyncIterator[Chunk]:
        """`_stream` for the event loop: the search is a task on the caller's context, reporting through a queue."""
        search, drafts = await asyncio.to_thread(self._prepare, kwargs)
        updates: asyncio.Queue = asyncio.Queue()

        def on_event(kind: str, data: Dict[str, Any]) -> None:
            self._emit(kind, data)
            if kind == "settled":
                updates.put_nowait(data["text"])

        task = context.run(asyncio.create_task, search.arun(prompt, drafts=drafts, on_event=on_event))
        task.add_done_callback(lambda _: updates.put_nowait(None))
        chunks = _Chunks()
        try:
            while (text := await updates.get()) is not None:
                yield chunks.settled(text)
            yield chunks.final(task.result())
        finally:
            task.cancel()  # a no-op once the search is done; stops it when the reader goes away

    # -- LlamaIndex's interface ---------------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return _completion(self._run(self._completion_prompt(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        chunks = self._stream(self._completion_prompt(prompt), kwargs, contextvars.copy_context())
        return (_completion(result, text, piece) for text, piece, result in chunks)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _chat(self._run(to_prompt(messages), kwargs))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        chunks = self._stream(to_prompt(messages), kwargs, contextvars.copy_context())
        return (_chat(result, text, piece) for text, piece, result in chunks)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return _completion(await self._arun(self._completion_prompt(prompt), kwargs))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        chunks = self._astream(self._completion_prompt(prompt), kwargs, contextvars.copy_context())
        return _amap(chunks, lambda text, piece, result: _completion(result, text, piece))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _chat(await self._arun(to_prompt(messages), kwargs))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        chunks = self._astream(to_prompt(messages), kwargs, contextvars.copy_context())
        return _amap(chunks, lambda text, piece, result: _chat(result, text, piece))


# -- responses and streaming chunks ---------------------------------------------------------------------------------


def _completion(result: Optional[SearchResult], text: Optional[str] = None, piece: Optional[str] = None):
    if result is None:
        return CompletionResponse(text=text, delta=piece)
    return CompletionResponse(text=result.answer, delta=piece, raw=result, additional_kwargs=metadata(result))


def _chat(result: Optional[SearchResult], text: Optional[str] = None, piece: Optional[str] = None) -> ChatResponse:
    content = result.answer if result is not None else text
    message = ChatMessage(role=MessageRole.ASSISTANT, content=content)
    if result is None:
        return ChatResponse(message=message, delta=piece)
    return ChatResponse(message=message, delta=piece, raw=result, additional_kwargs=metadata(result))


async def _amap(chunks: AsyncIterator[Chunk], make: Callable[[str, str, Optional[SearchResult]], Any]):
    async for text, piece, result in chunks:
        yield make(text, piece, result)


class _Chunks:
    """Turns settled prefixes and the final answer into chunks whose deltas add up to the answer."""

    def __init__(self) -> None:
        self.sent = ""

    def settled(self, text: str) -> Chunk:
        piece, self.sent = text[len(self.sent) :], text
        return text, piece, None

    def final(self, result: SearchResult) -> Chunk:
        return result.answer, delta(self.sent, result.answer), result


class _Done:
    """The worker's last message: the result, or the error to raise in the reader."""

    def __init__(self, result: Optional[SearchResult] = None, error: Optional[BaseException] = None):
        self.result, self.error = result, error

    def value(self) -> SearchResult:
        if self.error is not None:
            raise self.error
        return self.result


class _Abandoned(Exception):
    """Raised inside the search when nobody reads the stream any more."""


__all__ = ["DarwinLLM"]
