"""Make concurrent calls meet in a Coalescer on purpose, so a test of merging does not depend on timing."""
from __future__ import annotations

import threading
import time


def queue_behind(lock: threading.Lock, coalescer, threads: list[threading.Thread], seconds: float = 10) -> None:
    """Start the threads so that the first one's pass waits on `lock` (held here) while all the others queue
    behind it; they merge into the next pass once this returns and the lock is free."""

    def wait_until(condition) -> None:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)

    with lock:
        threads[0].start()
        wait_until(lambda: coalescer._running and not coalescer._queue)
        for t in threads[1:]:
            t.start()
        wait_until(lambda: len(coalescer._queue) == len(threads) - 1)
