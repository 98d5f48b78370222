"""A watch on an event loop, for tests that check that work done for the loop leaves it free.

Work wrapped with `LoopWatch.gated` waits, before it runs, for the loop to tick once more. Work that runs in
another thread sees a tick within milliseconds, however slow or busy the machine. Work that runs on the loop
itself holds the loop, so no tick can come: its wait times out and the watch counts it as `blocked`.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any


class LoopWatch:
    def __init__(self, patience: float = 10.0):
        self.patience = patience
        self.ticked = threading.Event()
        self.free = 0  # gated calls that saw the loop tick while they waited
        self.blocked = 0  # gated calls that saw no tick within `patience`
        self._lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def ticking(self) -> AsyncIterator[LoopWatch]:
        """Ticks on the running loop while the block runs."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.01)
                self.ticked.set()

        ticker = asyncio.create_task(tick())
        try:
            yield self
        finally:
            ticker.cancel()

    def wait_for_a_tick(self) -> None:
        """Waits for the loop's next tick; once one wait was in vain the loop is known blocked and the rest pass."""
        if self.blocked:
            with self._lock:
                self.blocked += 1
            return
        self.ticked.clear()
        ticked = self.ticked.wait(self.patience)
        with self._lock:
            if ticked:
                self.free += 1
            else:
                self.blocked += 1

    def gated(self, work: Callable[..., Any]) -> Callable[..., Any]:
        """`work`, first waiting for a tick of the loop."""

        @functools.wraps(work)
        def after_a_tick(*args: Any, **kwargs: Any) -> Any:
            self.wait_for_a_tick()
            return work(*args, **kwargs)

        return after_a_tick
