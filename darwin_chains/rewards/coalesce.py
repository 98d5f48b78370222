"""Concurrent calls merged into one pass: searches running at once share a reward's forward passes.

Each search scores its own beams, but one forward pass over all their rows costs far less than one pass per
search, and taking turns on a lock leaves every search waiting for the others anyway. So a caller queues its items;
whichever caller finds no pass running runs one pass for everything queued, and the others sleep on their own
event until their results are in, or until the finished leader hands them the next pass.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Call(Generic[Item, Result]):
    __slots__ = ("items", "results", "error", "lead", "event")

    def __init__(self, items: list[Item]):
        self.items, self.results, self.error, self.lead = items, None, None, False
        self.event = threading.Event()

    def take(self) -> list[Result]:
        if self.error is not None:
            raise self.error
        return self.results


class Coalescer(Generic[Item, Result]):
    """`coalescer(items)` returns `run(items)`, where `run` saw these items and those of every call queued beside
    them. `run` must return one result per item, in order, each independent of the others in the pass."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]]):
        self._run = run
        self._lock = threading.Lock()
        self._queue: list[_Call] = []
        self._running = False
        self.passes = 0  # passes run, and calls they served: how much merging happened (tests, benchmarks)
        self.calls = 0

    def __call__(self, items: Sequence[Item]) -> list[Result]:
        call: _Call = _Call(list(items))
        with self._lock:
            self._queue.append(call)
            lead, self._running = not self._running, True
        if not lead:
            call.event.wait()
            if not call.lead:
                return call.take()
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            results = list(self._run([item for c in batch for item in c.items]))
            start = 0
            for c in batch:
                c.results, start = results[start : start + len(c.items)], start + len(c.items)
        except BaseException as exc:  # every caller in the pass hears of it
            for c in batch:
                c.error = exc
        finally:
            with self._lock:
                self.passes, self.calls = self.passes + 1, self.calls + len(batch)
                for c in batch:
                    if c is not call:
                        c.event.set()
                if self._queue:  # arrived during the pass: the first of them runs the next one
                    self._queue[0].lead = True
                    self._queue[0].event.set()
                else:
                    self._running = False
        return call.take()


__all__ = ["Coalescer"]
