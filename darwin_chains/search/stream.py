"""A search as a stream of typed events: its progress, the answer's text as it settles, then the result.

The search reports through `on_event`. Here it runs in a worker thread (`stream`) or a task (`astream`) and its
reports flow through a queue, so the caller iterates on its own thread or event loop, in order. Closing the
iterator stops the search: the sync one at its next step, the async one at once (its task is cancelled).

Commit semantics: during its last mutation cycle the search reports "settled" text, the prefix that every answer
it can still return shares. That text can no longer change, so it is sent at once as `Delta`s, and `Final` brings
the rest: the deltas always add up to the answer (cut before the first stop sequence, if any). A streamed search
commits to its leading beam at the last cycle's first scoring round (`stream_commit`), so that text settles every
period rather than only where k rival beams, a seed sample and drafts happen to agree.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..prompt import PromptLike
from ..trace import SearchResult
from .stops import cut, hold_back

if TYPE_CHECKING:
    from .driver import Search

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """A step of the search: search_started, cycle_started, period_scored, replacement, archive_updated or
    search_finished, with what `Search.run(on_event=...)` reports for it."""

    kind: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Delta:
    """Text that extends the answer and that no later step can change."""

    text: str


@dataclass(frozen=True)
class Final:
    """The search's result, and the part of its answer not yet sent as a `Delta`."""

    result: SearchResult
    delta: str


Event = Union[Progress, Delta, Final]


def stream(search: Search, prompt: PromptLike, *, drafts: Sequence[str] = (), stop: Sequence[str] | None = None,
           context: contextvars.Context | None = None, **overrides: Any) -> Iterator[Event]:
    """`search.run(prompt)` in a worker thread, as events; the last one is `Final`, or the search's error is raised.

    The worker runs on (a copy of) `context`, by default the caller's, so work that reads context variables (a
    LangChain run started by a reward, say) sees the caller's. Closing the iterator early stops the search at its
    next step.
    """
    reports: queue.SimpleQueue = queue.SimpleQueue()
    stop = _stop(search, stop, overrides)
    closed = threading.Event()
    done = object()
    outcome: dict[str, Any] = {}

    def on_event(kind: str, data: dict) -> None:
        if closed.is_set():
            raise _Closed
        reports.put((kind, data))

    def work() -> None:
        try:
            outcome["result"] = search.run(prompt, drafts=drafts, on_event=on_event, streaming=True, **overrides)
        except BaseException as exc:  # handed to the reader, who raises it
            outcome["error"] = exc
        finally:
            reports.put(done)

    # A copy, so the caller may still enter its own context (LangChain's set_config_context does, on exit).
    context = context.copy() if context is not None else contextvars.copy_context()
    threading.Thread(target=context.run, args=(work,), name="darwin-search", daemon=True).start()
    commit = Commit(stop)
    try:
        while (item := reports.get()) is not done:
            if event := _event(commit, *item):
                yield event
    finally:
        closed.set()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    yield Final(result, commit.final(result.answer))


async def astream(search: Search, prompt: PromptLike, *, drafts: Sequence[str] = (),
                  stop: Sequence[str] | None = None, context: contextvars.Context | None = None,
                  **overrides: Any) -> AsyncIterator[Event]:
    """`stream` for the event loop: the search is a task (`search.arun`, whose model work runs in threads), so
    nothing blocks the loop. Closing the iterator early, or cancelling its consumer, cancels the search."""
    reports: asyncio.Queue = asyncio.Queue()
    stop = _stop(search, stop, overrides)
    run = search.arun(prompt, drafts=drafts, on_event=lambda kind, data: reports.put_nowait((kind, data)),
                      streaming=True, **overrides)
    task = context.copy().run(asyncio.ensure_future, run) if context is not None else asyncio.ensure_future(run)
    task.add_done_callback(lambda _: reports.put_nowait(None))
    commit = Commit(stop)
    try:
        while (item := await reports.get()) is not None:
            if event := _event(commit, *item):
                yield event
        result = task.result()
        yield Final(result, commit.final(result.answer))
    finally:
        task.cancel()  # a no-op once the search is done


def _stop(search: Search, stop: Sequence[str] | None, overrides: dict[str, Any]) -> tuple[str, ...]:
    """The stop sequences to hold text back for: those given and the search's own (the config's `stop`)."""
    config = search.config.replace(**overrides) if overrides else search.config
    return tuple(dict.fromkeys([*(s for s in stop or () if s), *config.stop]))


def _event(commit: Commit, kind: str, data: dict) -> Event | None:
    """The event for one report: a Delta for newly settled text (None when nothing is new), else Progress."""
    if kind != "settled":
        return Progress(kind, data)
    delta = commit.settled(data["text"])
    return Delta(delta) if delta else None


class Commit:
    """Turns settled texts and the final answer into deltas that add up to the answer.

    With stop sequences, the answer ends before the first one, and text that might be the start of one is held
    back until it is known not to be.
    """

    def __init__(self, stop: Sequence[str] | None = None):
        self.stop = tuple(s for s in stop or () if s)
        self.sent = ""

    def settled(self, text: str) -> str:
        """What `text`, all the settled text so far, adds to what was sent."""
        visible = self._hold_back(text)
        if len(visible) <= len(self.sent) or not visible.startswith(self.sent):
            return ""
        delta, self.sent = visible[len(self.sent) :], visible
        return delta

    def final(self, answer: str) -> str:
        """The rest of the answer: what was not sent yet."""
        answer = cut(answer, self.stop)
        if not answer.startswith(self.sent):  # settled text is a prefix of every possible answer: a core bug
            log.error("the answer does not extend the streamed text %r; the stream no longer adds up", self.sent)
            return answer
        return answer[len(self.sent) :]

    def _hold_back(self, text: str) -> str:
        return hold_back(text, self.stop)


class _Closed(Exception):
    """Raised inside the search when nobody reads the stream any more."""
