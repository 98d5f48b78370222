"""DarwinLLM: any darwin_chains policy behind LlamaIndex's LLM interface, its answers found by a Darwin search.

The wrapper is thin. It turns LlamaIndex messages into a `darwin_chains.Prompt`, runs `Search.run` (or `arun`), and
turns the `SearchResult` back into a response. Four LlamaIndex-specific choices live here:

- **Search only where it pays.** An engine's intermediate calls (condensing a question, routing, an agent's
  reasoning steps) get one plain sample; the answer gets the search (`calls.py` says how a call is told apart).

- **Context protection.** `_get_messages` is where `predict`/`stream`/`apredict`/`astream` (the calls every query
  and chat engine makes) format a template with its variables. There the query is marked, so mutation rewrites
  only the query and the retrieved context reaches every beam verbatim.
- **Streaming** commits the text the search has settled (the prefix every possible answer shares) as it grows,
  then the rest when the search ends; the deltas always add up to the answer. A streamed search commits to its
  leading beam at the first scoring round (`stream_commit`), so text arrives every period.
- **Tracing.** The usual LLM callbacks and instrumentation events, plus one event per step of the search
  (`llama_index.llms.darwin.events`).
"""
from __future__ import annotations

import asyncio
import contextvars
import difflib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Dict, List, Optional, Tuple

from darwin_chains import ConfigError, Mutator, Policy, Prompt, Reward, Search, SearchConfig, SearchResult
from darwin_chains.adapters import (
    Components,
    Delta,
    Event,
    Progress,
    as_mutator,
    as_reward,
    check_components,
    component_name,
    knobs,
    pydantic_fields,
    resolve,
    search_config,
)
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
from llama_index.core.bridge.pydantic import Field, PrivateAttr, create_model
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM
from llama_index.core.prompts import BasePromptTemplate

from .calls import (ANSWER, PROMPT_TYPE_KEY, SEARCH_MODES, Call, answer_messages, classify, final_answer,
                    react_answer, step_patterns)
from .events import to_event
from .utils import SENTINEL, request_variable, sentinel_start, tag_request, to_prompt

log = logging.getLogger(__name__)
dispatcher = get_dispatcher(__name__)

Chunk = Tuple[str, str, Optional[SearchResult]]  # (text so far, delta, the result on the last chunk)

#: Keyword arguments LlamaIndex itself passes to an LLM call (CustomLLM passes `formatted` on to `complete`).
LLAMA_INDEX_KWARGS = frozenset({"formatted"})

# One field per knob of SearchConfig, generated, each alias accepted; each may also be given per call.
_Searched = create_model("_Searched", __base__=LLM, __module__=__name__, **pydantic_fields())


class DarwinLLM(_Searched):
    """A LlamaIndex LLM whose answers come from Darwin's reward-guided evolutionary search.

    Setup:
        pip install "darwin-chains[llama-index]"
        darwin-chains setup                # the embedded models: SmolLM2 (the default policy) and MiniLM

    Key init args (components, the same as the core's):
        policy: a darwin_chains Policy, a policy spec ("embedded", "hf:PATH", "openai:MODEL@URL") or None for
            $DARWIN_CHAINS_POLICY / the embedded SmolLM2; loaded at first use.
        reward: a Reward, a callable (instruction, response) -> float (or (prompt, response), or
            (instruction, response, context) to see retrieved context), or a spec ("default", "relevance",
            "judge", "hf:PATH").
        mutator: a Mutator, a callable (instruction, n) -> list[str], "template" (default), "llm" or "none".
        search: "final" (default) searches only the answer to the user: a query or chat engine's synthesis, a
            ReAct agent's final answer, a direct call; an engine's intermediate calls (condensing a follow-up,
            routing, keyword extraction, agent reasoning steps) get one plain sample (`method="sample"`).
            "everywhere" searches every call. See `llama_index.llms.darwin.calls`.
        step_templates: templates of your own that an engine formats for one of its steps (a chat engine's
            `condense_prompt=`, say), as texts or PromptTemplates: their calls get one plain sample.
    Key init args (the search, as in `darwin_chains.SearchConfig`, aliases too):
        mutants, replacement_period, keep_top, mutation_cycles, max_new_tokens (max_tokens), temperature, seed,
        time_budget (timeout), ...; a misspelt one is a ConfigError that names the close ones.

    Instantiate, invoke, stream, async:
        >>> from llama_index.llms.darwin import DarwinLLM
        >>> llm = DarwinLLM(mutants=3, replacement_period=8, max_new_tokens=48)
        >>> response = llm.complete("Give three tips for writing a clear email.")
        >>> for chunk in llm.stream_complete("Name two primary colours."):
        ...     print(chunk.delta, end="")
        >>> response = await llm.achat([ChatMessage(role="user", content="Why is the sky blue?")])

        Calls made at once (threads, or `asyncio.gather` of `achat`s) are searches side by side; on a local
        policy their beams decode as rows of one batch.

        Engines and agents: `index.as_query_engine(llm=llm)`, `index.as_chat_engine(llm=llm)` (one search per
        turn) and `ReActAgent(llm=llm, tools=[...])` (one search per run). `FunctionAgent` needs a
        FunctionCallingLLM, and no darwin_chains policy calls tools, so it refuses DarwinLLM: use ReActAgent.

    What you get back: `response.additional_kwargs` holds the answer's `reward` (against the original
    instruction), `finished`, `finish_reason` ("stop" when the answer ended by itself, "length" when
    max_new_tokens cut it off) and the `trace` summary; `response.raw` is the full `darwin_chains.SearchResult`.
    `llm.metadata` reports the policy's context window and name. Per call, `drafts=[...]` adds candidate answers
    (the answer never scores below them), and any search field overrides the instance's value; any other keyword
    (bar LlamaIndex's own `formatted`) is a ConfigError.
    """

    search: str = Field(default="final", description="'final': search only the answer; 'everywhere': every call.")
    _components: Any = PrivateAttr(default=None)  # a darwin_chains Components: resolved at first use
    _steps: Tuple[Any, ...] = PrivateAttr(default=())  # patterns of the person's own step templates

    def __init__(
        self,
        policy: Policy | str | None = None,
        reward: Reward | Callable[[str, str], float] | str | None = None,
        mutator: Mutator | Callable[[str, int], Sequence[str]] | str | None = "template",
        search: str = "final",
        step_templates: Sequence[Any] = (),
        **kwargs: Any,
    ) -> None:
        if search not in SEARCH_MODES:
            raise ConfigError(f"search must be one of {', '.join(SEARCH_MODES)}, got {search!r}: 'final' searches "
                              "only an engine's answer, 'everywhere' every LLM call")
        own = {k: v for k, v in kwargs.items() if k in LLM.model_fields}
        super().__init__(search=search, **own, **_searched({k: v for k, v in kwargs.items() if k not in own}))
        config = self.search_config()  # and a bad value here, before any model loads
        if isinstance(policy, Policy):
            self._check_context(policy)
        elif not (isinstance(policy, str) or policy is None):
            raise ConfigError(f"policy must be a darwin_chains Policy or a policy spec, got {type(policy).__name__}")
        check_components(config, reward, mutator)
        reward = reward if isinstance(reward, str) or reward is None else as_reward(reward)
        mutator = mutator if isinstance(mutator, str) or mutator is None else as_mutator(mutator)
        self._components = Components(policy, reward, mutator, check=self._check_context)
        self._steps = step_patterns(step_templates)

    @classmethod
    def class_name(cls) -> str:
        return "DarwinLLM"

    # -- components and configuration ---------------------------------------------------------------------------

    def search_config(self, **overrides: Any) -> SearchConfig:
        """The search this LLM runs, with per-call overrides; raises ConfigError on a value that cannot work."""
        return search_config({knob.name: getattr(self, knob.name) for knob in knobs()}, **overrides)

    @staticmethod
    def overrides(kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """The search parameters among a call's kwargs, by name. LlamaIndex's own kwargs (LLAMA_INDEX_KWARGS) pass
        by; any other name (`mutant=3`, `tools=[...]`) is a ConfigError, never silently ignored."""
        try:
            return resolve({k: v for k, v in kwargs.items() if k not in LLAMA_INDEX_KWARGS})
        except ConfigError as error:
            raise ConfigError(f"DarwinLLM call: {error}; a call also takes drafts=[...]") from None

    @property
    def policy(self) -> Policy:
        """The darwin_chains policy, loaded (once) at first use."""
        return self._components.policy()

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
        if self._components.loaded_policy is not None:
            payload.update(self.metadata.model_dump())
        else:
            payload["policy"] = self._components.specs[0] or "default"
        return payload

    def _get_messages(self, prompt: BasePromptTemplate, **prompt_args: Any) -> List[ChatMessage]:
        # predict, stream, apredict and astream all format their template here: the one place that still knows
        # which variable is the query and which is retrieved context.
        # It is also the one place that knows the template's prompt type, which says whether the call is an answer.
        messages = super()._get_messages(prompt, **prompt_args)
        variables = {**prompt.kwargs, **prompt_args}
        key = request_variable(variables)
        if key is not None:
            probe = super()._get_messages(prompt, **{**prompt_args, key: SENTINEL})  # where the query lands
            messages = tag_request(messages, variables, start=sentinel_start(probe))
        kind = prompt.metadata.get("prompt_type")
        if not messages or kind is None:
            return messages
        last = messages[-1]
        marks = {**last.additional_kwargs, PROMPT_TYPE_KEY: getattr(kind, "value", kind)}
        return [*messages[:-1], last.model_copy(update={"additional_kwargs": marks})]

    # -- the one implementation every call shares ---------------------------------------------------------------

    def _call(self, messages: Sequence[ChatMessage]) -> Call:
        """What this call is for (answer, step or agent step), from what LlamaIndex passed (`calls.classify`)."""
        if self.search == "everywhere":
            return ANSWER
        marks = messages[-1].additional_kwargs if messages else {}
        return classify(messages, marks.get(PROMPT_TYPE_KEY), self._steps)

    def _routed(self, kwargs: Dict[str, Any], call: Call) -> Dict[str, Any]:
        """The call's kwargs, checked now (a stream too fails where it is asked for, not where it is read). A step
        is one plain sample, through the same Search, so its trace and budget look like a search's."""
        self.search_config(**self.overrides({k: v for k, v in kwargs.items() if k != "drafts"}))
        return kwargs if call.searched else {**kwargs, "method": "sample"}

    async def _agent_step(self, messages: Sequence[ChatMessage], kwargs: Dict[str, Any], context: str) -> ChatResponse:
        """A ReAct step: one plain sample; when the agent reads it as its final answer, one search refines that
        answer, with the sample as a draft, over the person's conversation (`calls.answer_messages`)."""
        step = await self._arun(to_prompt(messages), self._routed(kwargs, Call("step")))
        parsed = final_answer(step.answer)
        conversation = answer_messages(context, list(messages)) if parsed else None
        if conversation is None:
            return _chat(step)
        thought, draft = parsed
        drafts = [*kwargs.get("drafts", ()), *([draft] if draft.strip() else [])]
        result = await self._arun(to_prompt(conversation), {**kwargs, "drafts": drafts})
        return _chat(result, text=react_answer(thought, result.answer))

    def _prepare(self, kwargs: Dict[str, Any]) -> Tuple[Search, List[str]]:
        drafts = list(kwargs.pop("drafts", None) or ())
        overrides = self.overrides(kwargs)
        policy, reward, mutator = self._components.get()
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
        """Settled text as it grows, then the rest.

        `context` is the caller's, taken when the stream was asked for: LlamaIndex closes the call's span when it
        returns the generator, and the search's events belong to that span, not to whoever iterates later.
        """
        search, drafts = self._prepare(kwargs)
        chunks = _Chunker(context)
        for event in search.stream(prompt, drafts=drafts, context=context):
            if (chunk := chunks.of(event)) is not None:
                yield chunk

    async def _astream(
        self, prompt: Prompt, kwargs: Dict[str, Any], context: contextvars.Context
    ) -> AsyncIterator[Chunk]:
        """`_stream` for the event loop: the search is a task on the caller's context."""
        search, drafts = await asyncio.to_thread(self._prepare, kwargs)
        chunks = _Chunker(context)
        async for event in search.astream(prompt, drafts=drafts, context=context):
            if (chunk := chunks.of(event)) is not None:
                yield chunk

    # -- LlamaIndex's interface ---------------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        kwargs = self._routed(kwargs, self._call(_asked(prompt)))
        return _completion(self._run(self._completion_prompt(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        kwargs = self._routed(kwargs, self._call(_asked(prompt)))
        chunks = self._stream(self._completion_prompt(prompt), kwargs, contextvars.copy_context())
        return (_completion(result, text, piece) for text, piece, result in chunks)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        kwargs = self._routed(kwargs, self._call(messages))
        return _chat(self._run(to_prompt(messages), kwargs))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        kwargs = self._routed(kwargs, self._call(messages))
        chunks = self._stream(to_prompt(messages), kwargs, contextvars.copy_context())
        return (_chat(result, text, piece) for text, piece, result in chunks)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        kwargs = self._routed(kwargs, self._call(_asked(prompt)))
        return _completion(await self._arun(self._completion_prompt(prompt), kwargs))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        kwargs = self._routed(kwargs, self._call(_asked(prompt)))
        chunks = self._astream(self._completion_prompt(prompt), kwargs, contextvars.copy_context())
        return _amap(chunks, lambda text, piece, result: _completion(result, text, piece))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        call = self._call(messages)
        if call.kind == "agent":
            return await self._agent_step(messages, kwargs, call.context)
        return _chat(await self._arun(to_prompt(messages), self._routed(kwargs, call)))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        call = self._call(messages)
        if call.kind == "agent":  # whether a step is the answer is known once it is written: one chunk
            return _once(await self._agent_step(messages, kwargs, call.context))
        chunks = self._astream(to_prompt(messages), self._routed(kwargs, call), contextvars.copy_context())
        return _amap(chunks, lambda text, piece, result: _chat(result, text, piece))


def _asked(prompt: str) -> List[ChatMessage]:
    """A completion's prompt as the message LlamaIndex would send, for `_call`."""
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


def _searched(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The search fields among the constructor's kwargs; a misspelt LlamaIndex field is named as such."""
    try:
        return resolve(kwargs)
    except ConfigError as error:
        close = [f"{k} (did you mean {m[0]}?)" for k in kwargs
                 if (m := difflib.get_close_matches(k, list(LLM.model_fields), 1))]
        fields = f"; a LlamaIndex LLM field misspelt: {', '.join(close)}" if close else ""
        raise ConfigError(f"{error}{fields}; DarwinLLM also takes policy, reward, mutator, search and LlamaIndex's "
                          f"LLM fields ({', '.join(LLM.model_fields)})") from None


# -- responses and streaming chunks ---------------------------------------------------------------------------------


def _completion(result: Optional[SearchResult], text: Optional[str] = None, piece: Optional[str] = None):
    if result is None:
        return CompletionResponse(text=text, delta=piece)
    return CompletionResponse(text=result.answer, delta=piece, raw=result, additional_kwargs=result.metadata())


def _chat(result: Optional[SearchResult], text: Optional[str] = None, piece: Optional[str] = None) -> ChatResponse:
    """A chat response: a streamed chunk (`text` so far and its `piece`), or the `result` (its answer, unless `text`
    writes it in the caller's format)."""
    content = text if result is None or text is not None else result.answer
    message = ChatMessage(role=MessageRole.ASSISTANT, content=content)
    if result is None:
        return ChatResponse(message=message, delta=piece)
    return ChatResponse(message=message, delta=piece, raw=result, additional_kwargs=result.metadata())


async def _once(response: ChatResponse):
    yield response.model_copy(update={"delta": response.message.content})


async def _amap(chunks: AsyncIterator[Chunk], make: Callable[[str, str, Optional[SearchResult]], Any]):
    async for text, piece, result in chunks:
        yield make(text, piece, result)


class _Chunker:
    """Turns a streamed search's events into chunks, and its progress into instrumentation events in the call's
    span (`context`)."""

    def __init__(self, context: contextvars.Context) -> None:
        self.context, self.text = context, ""

    def of(self, event: Event) -> Optional[Chunk]:
        if isinstance(event, Progress):
            self.context.run(DarwinLLM._emit, event.kind, event.data)
            return None
        if isinstance(event, Delta):
            self.text += event.text
            self.context.run(DarwinLLM._emit, "settled", {"text": self.text})
            return self.text, event.text, None
        return event.result.answer, event.delta, event.result


__all__ = ["DarwinLLM"]
