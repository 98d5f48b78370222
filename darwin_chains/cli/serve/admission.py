"""Admission: how many searches run at once, how many may wait, and what happens to those nobody waits for.

A search can cost a thousand plain completions, so the server bounds its work: `max_concurrent` searches run
side by side, as tasks on the event loop, `max_queue` more wait their turn, and the next is refused at once (429
with `Retry-After`) rather than left to wait for all of them. Memory is bounded the way vLLM bounds its KV cache:
each search holds about `tokens` cached tokens (its prompt and answer, for every beam), and searches start, in
order of arrival, only while the running ones hold at most `max_tokens` in all (one always may). A search whose client has gone (disconnected, or
stopped reading) is cancelled: it stops at its next await, between steps, so nothing is spent beyond the step in
flight. At shutdown, waiting searches are refused and running ones may be cancelled.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a running or waiting search checks that its client is still there (seconds).
POLL = 0.1
#: Searches running at once by default. Running ones share the model: a local policy decodes their beams as rows
#: of one batch (at most its `max_batch_rows`; the rest wait there), a remote server batches their requests. Eight
#: default searches (six beams each) fit the local policy's 64 rows; every running search also keeps its beams'
#: caches while it scores, so this, not the batch, bounds the memory they hold.
MAX_CONCURRENT = 8


class Refused(Exception):
    """The server cannot take this search now: `status` 429 (queue full) or 503 (shutting down)."""

    def __init__(self, status: int, message: str, retry_after: int):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class Disconnected(Exception):
    """The client went away; its search was cancelled."""


class Cancelled(Exception):
    """The server cancelled the search (shutdown timeout); the client is still there and gets a 503."""


class Admission:
    """Running and waiting searches of one app; `await admission.run(work, is_disconnected)`."""

    def __init__(self, max_concurrent: int = MAX_CONCURRENT, max_queue: int = 16, max_tokens: int | None = None):
        if max_concurrent < 1 or max_queue < 0 or (max_tokens is not None and max_tokens < 1):
            raise ValueError(f"max_concurrent must be >= 1, max_queue >= 0 and max_tokens >= 1 (or None), got "
                             f"{max_concurrent}, {max_queue}, {max_tokens}")
        self.max_concurrent, self.max_queue, self.max_tokens = max_concurrent, max_queue, max_tokens
        self.running = 0
        self.held = 0  # cached tokens the running searches hold, by their own estimate
        self.waiting: deque[tuple[asyncio.Future, int]] = deque()
        self.tasks: set[asyncio.Task] = set()  # running searches, cancelled at the shutdown timeout
        self.closed = False
        self.durations: deque[float] = deque(maxlen=20)  # recent search seconds, for Retry-After
        self.cancelled = {"disconnect": 0, "shutdown": 0}

    @property
    def queued(self) -> int:
        return len(self.waiting)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: one running search's expected rest, at least 1."""
        if not self.durations:
            return 1
        mean = sum(self.durations) / len(self.durations)
        return max(1, min(600, math.ceil(mean / self.max_concurrent)))

    def fits(self, tokens: int) -> bool:
        """Whether a search holding `tokens` may start now, beside the running ones."""
        return self.running < self.max_concurrent and (
            self.running == 0 or self.max_tokens is None or self.held + tokens <= self.max_tokens)

    async def run(self, work: Callable[[], Awaitable[T]], is_disconnected: Callable[[], Awaitable[bool]],
                  tokens: int = 0) -> T:
        """Wait for a place (and room for `tokens`), run `work` as a task, and cancel it if the client goes away or
        the server stops."""
        if self.closed:
            raise Refused(503, "the server is shutting down; retry on another instance", self.retry_after())
        if self.waiting or not self.fits(tokens):
            if self.queued >= self.max_queue:
                raise Refused(429, f"the server is busy ({self.running} searches running, {self.queued} waiting); "
                                   "retry later", self.retry_after())
            await self._wait_turn(is_disconnected, tokens)  # the place is handed over already counted as running
        else:
            self.running, self.held = self.running + 1, self.held + tokens
        started = time.perf_counter()
        task = asyncio.ensure_future(work())
        self.tasks.add(task)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=POLL)
                if done:
                    break
                if await is_disconnected():
                    task.cancel()
                    self.cancelled["disconnect"] += 1
                    raise Disconnected()
            if task.cancelled():
                raise Cancelled()
            result = task.result()
            self.durations.append(time.perf_counter() - started)
            return result
        except asyncio.CancelledError:  # this request's own task was cancelled (the server is going down)
            task.cancel()
            raise
        finally:
            self.tasks.discard(task)
            self.running, self.held = self.running - 1, self.held - tokens
            self._next()

    async def _wait_turn(self, is_disconnected: Callable[[], Awaitable[bool]], tokens: int) -> None:
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append((turn, tokens))
        try:
            while True:
                done, _ = await asyncio.wait({turn}, timeout=POLL)
                if done:
                    turn.result()  # raises Refused when the server closed while this one waited
                    return
                if await is_disconnected():
                    self.cancelled["disconnect"] += 1
                    raise Disconnected()
        except BaseException:
            if (turn, tokens) in self.waiting:
                self.waiting.remove((turn, tokens))
                self._next()  # it may have held back smaller ones behind it
            elif turn.done() and not turn.cancelled() and turn.exception() is None:
                self.running, self.held = self.running - 1, self.held - tokens  # given a place, but leaves
                self._next()
            raise

    def _next(self) -> None:
        """Give free places to the longest-waiting searches, in order, while they fit."""
        while self.waiting and self.fits(self.waiting[0][1]):
            turn, tokens = self.waiting.popleft()
            if not turn.done():
                # counted now, so no newcomer takes the place before the waiter wakes
                self.running, self.held = self.running + 1, self.held + tokens
                turn.set_result(None)

    def close(self) -> None:
        """Take no new searches and refuse the waiting ones; the running ones go on."""
        self.closed = True
        while self.waiting:
            turn, _ = self.waiting.popleft()
            if not turn.done():
                turn.set_exception(Refused(503, "the server is shutting down; retry on another instance", 1))

    def cancel_running(self) -> int:
        """Cancel every running search (the shutdown grace period is over); how many were cancelled."""
        for task in self.tasks:
            task.cancel()
        self.cancelled["shutdown"] += len(self.tasks)
        return len(self.tasks)
