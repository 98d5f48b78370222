"""DarwinAlign: a Darwin search as a Runnable, to put after a prompt (or a draft) anywhere in an LCEL chain."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, Optional

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from langchain_core.runnables.config import patch_config
from pydantic import ConfigDict

from ._base import DarwinFields
from ._convert import DarwinInput, to_request


class DarwinAlign(DarwinFields, RunnableSerializable[DarwinInput, AIMessage]):
    """Aligns an answer at decode time with Darwin, reward-guided evolutionary search (arXiv 2406.15193).

    The instruction is mutated into variants, one beam decodes per variant `replacement_period` tokens at a
    time, every partial answer is scored against the ORIGINAL instruction, and losing beams adopt the top beams'
    answers. The best-scoring answer comes back as an AIMessage.

    Setup:
        make setup    # scripts/setup.sh: darwin-chains with this integration, and the embedded models (offline)

    Key init args (components):
        policy: the model that writes. None: $DARWIN_CHAINS_POLICY if set (any policy spec, e.g. "hf:/models/x"),
            else the embedded SmolLM2-135M-Instruct, loaded at first use. Also: a darwin_chains Policy, a LangChain
            chat model or LLM (see `LangChainPolicy`), or a policy spec.
        reward: what "better" means. A callable (instruction, response) -> float (or (prompt, response), or
            (instruction, response, context) to see retrieved context), a darwin_chains Reward, a
            LangChain Runnable taking {"instruction", "response", "context"} (see `RunnableReward`), or a spec. None: "default"
            (the packaged preference reward, a head over SmolLM2 hidden states trained on GPT-4 Turbo judgments).
        mutator: "template" (fixed, intent-preserving augmentations; the default), "llm" (the policy rewrites the
            instruction), a LangChain model that rewrites it, a Mutator or a callable (instruction, n) -> list[str].

    Key init args (the search; the paper's symbols in brackets):
        mutants (n), beams_per_mutant (nb), replacement_period (m), keep_top (k), mutation_cycles, archive_size,
        look_ahead (l), max_new_tokens (alias max_tokens), temperature, top_k, top_p, seed, seed_sample,
        reward_threshold, time_budget (alias timeout), method ("darwin" or a baseline). A value that cannot work
        raises `darwin_chains.ConfigError` here, before any model loads. Each may also be given per call
        (`align.invoke(x, max_new_tokens=64)` or `align.bind(mutants=3)`).

    Instantiate:
        >>> from langchain_core.prompts import ChatPromptTemplate
        >>> from langchain_core.output_parsers import StrOutputParser
        >>> from langchain_darwin import DarwinAlign
        >>> align = DarwinAlign(reward=lambda instruction, response: -abs(len(response.split()) - 40),
        ...                     mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48)
        >>> chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | align | StrOutputParser()

    Invoke:
        >>> chain.invoke({"question": "Give three tips for writing a clear email."})
        >>> align.invoke("Name two primary colours.")   # also: a PromptValue, a message list, a RefineInput dict

    Refine a draft (an agent's answer): the draft is a candidate, so the result never scores below it.
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> align.invoke({"question": "Why is the sky blue?", "draft": "Because of the sea."})
        >>> align.invoke([HumanMessage("Why is the sky blue?"), AIMessage("Because of the sea.")])

    RAG: put the context in a system message (or the dict's "context"); mutation rewrites only the final user
    message, so the retrieved text reaches every beam unchanged. A template with the question and the context in
    one human message (the hub's rlm/rag-prompt) marks its question: `mark_question(prompt) | align`.

    Agents: a conversation with tool calls and ToolMessages is fine; the results become a system message before
    the question. `DarwinRefine` runs this as a LangGraph node on an agent's final answer.

    Stream (commit semantics):
        >>> for chunk in align.stream("Give three tips for writing a clear email."):
        ...     print(chunk.content, end="", flush=True)

        A chunk is text that can no longer change: the prefix that every live beam and every finished candidate
        share, streamed whole words at a time as soon as it settles. A streamed search commits to its leading
        beam at the last cycle's first scoring round (stream_commit=True, the default): every other beam adopts
        its text and the seed sample and drafts retire, so text settles every period from then on, and the answer
        can differ from invoke's. With stream_commit=False the stream carries invoke's answer, usually in one
        piece at the end. The last chunk brings the rest of the answer and the metadata; the chunks add up to the
        answer.

    Async: `ainvoke`, `abatch`, `astream` await the search, so the event loop stays free.
    `astream_events` shows the search's progress as custom events: darwin.search_started, darwin.cycle_started,
    darwin.period_scored, darwin.replacement, darwin.archive_updated and darwin.search_finished.

    Batch: `batch` and `abatch` run their searches side by side, at most the config's `max_concurrency` at once;
    on a local policy their beams decode as rows of one batch.

    Response metadata:
        >>> msg = align.invoke("Name two primary colours.")
        >>> msg.response_metadata["reward"]                 # the answer's reward against the original instruction
        >>> msg.response_metadata["darwin"]                 # trace summary (cycles, periods, replacements, ...)
        >>> msg.response_metadata["model_name"]             # the policy's name
        >>> msg.usage_metadata                              # tokens the whole search read and wrote

        >>> msg.response_metadata["finish_reason"]          # "stop" (ended by itself) or "length" (cut off)

        With include_trace=True (at construction or per call), response_metadata["darwin"]["trace"] holds the
        full trace.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return DarwinInput

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return AIMessage

    # -- the Runnable interface -----------------------------------------------------------------------------------

    def invoke(self, input: DarwinInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> AIMessage:
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def ainvoke(self, input: DarwinInput, config: Optional[RunnableConfig] = None, **kwargs: Any) -> AIMessage:
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    def stream(self, input: DarwinInput, config: Optional[RunnableConfig] = None,
               **kwargs: Any) -> Iterator[AIMessageChunk]:
        yield from self.transform(iter([input]), config, **kwargs)

    async def astream(self, input: DarwinInput, config: Optional[RunnableConfig] = None,
                      **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        async for chunk in self.atransform(_once(input), config, **kwargs):
            yield chunk

    def transform(self, input: Iterator[DarwinInput], config: Optional[RunnableConfig] = None,
                  **kwargs: Any) -> Iterator[AIMessageChunk]:
        yield from self._transform_stream_with_config(input, self._transform, config, **kwargs)

    async def atransform(self, input: AsyncIterator[DarwinInput], config: Optional[RunnableConfig] = None,
                         **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        async for chunk in self._atransform_stream_with_config(input, self._atransform, config, **kwargs):
            yield chunk

    # -- implementations --------------------------------------------------------------------------------------------

    # The search runs in the context LangChain set up for this run: its child config is the running one.

    def _invoke(self, input: DarwinInput, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> AIMessage:
        request, call = to_request(input), self.prepare(kwargs)
        return call.run(request, patch_config(config, callbacks=run_manager.get_child()))

    async def _ainvoke(self, input: DarwinInput, run_manager: Any, config: RunnableConfig, **kwargs: Any) -> AIMessage:
        request = to_request(input)
        call = await asyncio.to_thread(self.prepare, kwargs)  # the first call loads models: off the event loop
        return await call.arun(request, patch_config(config, callbacks=run_manager.get_child()))

    def _transform(self, inputs: Iterator[DarwinInput], run_manager: Any, config: RunnableConfig,
                   **kwargs: Any) -> Iterator[AIMessageChunk]:
        request, call = to_request(_gather(inputs)), self.prepare(kwargs)
        yield from call.stream(request, config)

    async def _atransform(self, inputs: AsyncIterator[DarwinInput], run_manager: Any, config: RunnableConfig,
                          **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        request = to_request(await _agather(inputs))
        call = await asyncio.to_thread(self.prepare, kwargs)
        async for chunk in call.astream(request, config):
            yield chunk


def _gather(chunks: Iterator[Any]) -> Any:
    """One input from an upstream stream: chunks that add up are added (text, messages), others are replaced."""
    final = None
    for chunk in chunks:
        try:
            final = chunk if final is None else final + chunk
        except TypeError:
            final = chunk
    return final


async def _agather(chunks: AsyncIterator[Any]) -> Any:
    return _gather([chunk async for chunk in chunks])


async def _once(value: Any) -> AsyncIterator[Any]:
    yield value
