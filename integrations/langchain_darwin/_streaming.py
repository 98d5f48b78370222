"""Running one search while reporting what it does: the one implementation `stream`, `astream` and the async
calls of DarwinAlign and ChatDarwin share.

A search reports through `on_event`. Here it runs in a worker thread (sync) or a task (async) and its events flow
through a queue, so the caller yields chunks and dispatches LangChain callbacks on its own thread, in order.

Commit semantics: the search emits "settled" text, the prefix that every answer it can still return shares. That
text can no longer change, so it is streamed at once; the rest of the answer follows when the search ends. The
chunks always add up to the final answer.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

from darwin_chains import Prompt, Search
from langchain_core.callbacks import adispatch_custom_event, dispatch_custom_event
from langchain_core.runnables import RunnableConfig

log = logging.getLogger(__name__)

#: ("settled", text so far) while the search runs, then ("result", SearchResult).
Event = tuple[str, Any]


def stream_search(search: Search, prompt: Prompt, drafts: Sequence[str], overrides: dict[str, Any], *,
                  on_progress: Callable[[str, dict], None] | None = None,
                  context: contextvars.Context | None = None) -> Iterator[Event]:
    """("settled", text) as the answer's prefix settles, then ("result", SearchResult); every other event goes to
    `on_progress`, called on the reader's thread in order.

    The search runs in a worker thread on `context` (default: a copy of the caller's), so LangChain runs it starts
    (a Runnable reward, a LangChain policy) nest under the caller's run. Closing the iterator early stops the
    search at its next step.
    """
    events: queue.SimpleQueue = queue.SimpleQueue()
    abandoned = threading.Event()
    done = object()
    outcome: dict[str, Any] = {}

    def on_event(kind: str, data: dict) -> None:
        if abandoned.is_set():
            raise _Abandoned
        events.put((kind, data))

    def work() -> None:
        try:
            outcome["result"] = search.run(prompt, drafts=drafts, on_event=on_event, **overrides)
        except BaseException as exc:  # handed to the reader, who raises it
            outcome["error"] = exc
        finally:
            events.put(done)

    context = context or contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="darwin-search", daemon=True).start()
    try:
        while (item := events.get()) is not done:
            if item[0] == "settled":
                yield "settled", item[1]["text"]
            elif on_progress is not None:
                on_progress(*item)
    finally:
        abandoned.set()
    if "error" in outcome:
        raise outcome["error"]
    yield "result", outcome["result"]


async def astream_search(search: Search, prompt: Prompt, drafts: Sequence[str], overrides: dict[str, Any], *,
                         on_progress: Callable[[str, dict], Awaitable[None]] | None = None,
                         context: contextvars.Context | None = None) -> AsyncIterator[Event]:
    """`stream_search` for the event loop: the search is a task (its model work runs in threads) that reports
    through an asyncio queue, so nothing blocks the loop. Closing the iterator early cancels the search."""
    events: asyncio.Queue = asyncio.Queue()
    run = search.arun(prompt, drafts=drafts, on_event=lambda kind, data: events.put_nowait((kind, data)), **overrides)
    task = context.run(asyncio.ensure_future, run) if context is not None else asyncio.ensure_future(run)
    task.add_done_callback(lambda _: events.put_nowait(None))
    try:
        while (item := await events.get()) is not None:
            if item[0] == "settled":
                yield "settled", item[1]["text"]
            elif on_progress is not None:
                await on_progress(*item)
        yield "result", task.result()
    finally:
        task.cancel()  # a no-op once the search is done


def progress(config: RunnableConfig | None) -> Callable[[str, dict], None]:
    """An `on_progress` that sends each search event as a LangChain custom event ("darwin.cycle_started", ...) of
    the run whose child config this is; with no config it drops them."""

    def on_progress(kind: str, data: dict) -> None:
        if config is not None and kind != "settled":
            dispatch_custom_event(f"darwin.{kind}", data, config=config)

    return on_progress


def aprogress(config: RunnableConfig | None) -> Callable[[str, dict], Awaitable[None]]:
    """`progress` for the async paths."""

    async def on_progress(kind: str, data: dict) -> None:
        if config is not None and kind != "settled":
            await adispatch_custom_event(f"darwin.{kind}", data, config=config)

    return on_progress


class Commit:
    """Turns settled texts and the final answer into deltas that add up to the answer.

    With stop sequences, the answer ends before the first one, and text that might be the start of one is held
    back until it is known not to be.
    """

    def __init__(self, stop: Sequence[str] | None = None):
        self.stop = tuple(s for s in stop or () if s)
        self.sent = ""

    def settled(self, text: str) -> str:
        visible = self._hold_back(text)
        if len(visible) <= len(self.sent) or not visible.startswith(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent) :], visible
        return delta

    def final(self, answer: str) -> str:
        answer = cut(answer, self.stop)
        if not answer.startswith(self.sent):  # settled text is a prefix of every possible answer: a core bug
            log.error("the answer does not extend the streamed text %r; the stream no longer adds up", self.sent)
            return answer
        return answer[len(self.sent) :]

    def _hold_back(self, text: str) -> str:
        text = cut(text, self.stop)
        for start in range(max(0, len(text) - max(map(len, self.stop), default=0)), len(text)):
            if any(s.startswith(text[start:]) for s in self.stop):
                return text[:start]
        return text


def cut(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to the first stop sequence."""
    ends = [i for i in (text.find(s) for s in stop or () if s) if i >= 0]
    return text[: min(ends)] if ends else text


class _Abandoned(Exception):
    """Raised inside the search when nobody reads the stream any more."""
