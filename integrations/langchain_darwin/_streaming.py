"""A search's events as LangChain sees them: message chunks, and progress as custom events ("darwin.<kind>").

The core runs the search and streams its events (`Search.stream` / `Search.astream`); here the progress goes to
the callbacks of the run whose child config is given, on the reader's thread and in order, and the text becomes
AIMessageChunks that add up to the answer.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Callable, Optional

from darwin_chains import SearchResult
from darwin_chains.adapters import Event, Final, Progress
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import RunnableConfig

from ._convert import to_chunk


def progress(config: Optional[RunnableConfig]) -> Callable[[str, dict], None]:
    """An `on_event` for `Search.run` that sends each step as a custom event of the run whose child config this
    is; with no config it drops them. Settled text is the stream's business, not an event."""

    def on_event(kind: str, data: dict) -> None:
        if config is not None and kind != "settled":
            dispatch_custom_event(f"darwin.{kind}", data, config=config)

    return on_event


def chunks(events: Iterator[Event], config: Optional[RunnableConfig], model_name: str,
           include_trace: bool = False) -> Iterator[AIMessageChunk]:
    """The chunks of a streamed search; its progress goes out as custom events as it comes."""
    on_event = progress(config)
    for event in events:
        if isinstance(event, Progress):
            on_event(event.kind, event.data)
        elif chunk := to_chunk(event, model_name, include_trace):
            yield chunk


async def achunks(events: AsyncIterator[Event], config: Optional[RunnableConfig], model_name: str,
                  include_trace: bool = False) -> AsyncIterator[AIMessageChunk]:
    """`chunks` for the event loop."""
    async for event in events:
        if isinstance(event, Progress):
            await _adispatch(event, config)
        elif chunk := to_chunk(event, model_name, include_trace):
            yield chunk


async def aresult(events: AsyncIterator[Event], config: Optional[RunnableConfig]) -> SearchResult:
    """The result of a streamed search, its progress sent as custom events on the way."""
    async for event in events:
        if isinstance(event, Progress):
            await _adispatch(event, config)
        elif isinstance(event, Final):
            return event.result
    raise AssertionError("a search stream ends with its Final event")


async def _adispatch(event: Progress, config: Optional[RunnableConfig]) -> None:
    if config is not None:
        await adispatch_custom_event(f"darwin.{event.kind}", event.data, config=config)
