"""Concurrent reward calls merged into one pass (`rewards/coalesce.py`), and the LRU of read blocks (`blocks.py`)."""
from __future__ import annotations

import threading
import time

import pytest

from darwin_chains.rewards.blocks import Block, BlockCache
from darwin_chains.rewards.coalesce import Coalescer


def _wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _queued(coalescer: Coalescer) -> int:
    with coalescer._lock:
        return len(coalescer._queue)


def test_calls_queued_during_a_pass_share_the_next_one_and_get_their_own_results():
    gate, seen = threading.Event(), []

    def run(items):
        seen.append(list(items))
        gate.wait()
        return [item * 10 for item in items]

    coalescer = Coalescer(run)
    results = {}

    def call(name, items):
        results[name] = coalescer(items)

    first = threading.Thread(target=call, args=("first", [1]))
    first.start()
    _wait_until(lambda: seen)  # the first caller is inside its pass
    others = [threading.Thread(target=call, args=(n, items)) for n, items in [("a", [2, 3]), ("b", [4]), ("c", [5])]]
    for t in others:
        t.start()
    _wait_until(lambda: _queued(coalescer) == 3)
    gate.set()
    for t in [first, *others]:
        t.join(5)
    assert results == {"first": [10], "a": [20, 30], "b": [40], "c": [50]}
    assert coalescer.passes == 2 and coalescer.calls == 4
    assert sorted(seen[1]) == [2, 3, 4, 5]  # the three queued calls ran as one pass


def test_an_error_reaches_every_call_of_its_pass_and_the_next_call_runs_again():
    gate, passes = threading.Event(), []

    def run(items):
        passes.append(items)
        gate.wait()
        if len(passes) == 2:
            raise RuntimeError("boom")
        return items

    coalescer = Coalescer(run)
    errors = []

    def call(items):
        try:
            coalescer(items)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=([i],)) for i in range(3)]
    threads[0].start()
    _wait_until(lambda: passes)
    for t in threads[1:]:
        t.start()
    _wait_until(lambda: _queued(coalescer) == 2)
    gate.set()
    for t in threads:
        t.join(5)
    assert len(errors) == 2  # both calls of the failed pass
    assert coalescer([7]) == [7]  # nothing is left running


def test_the_block_cache_keeps_the_most_recently_used_within_its_token_bound():
    cache = BlockCache(max_tokens=20)
    for key in "abc":
        cache.put(key, Block((), None, 8))
    assert cache.get("a") is None and cache.tokens == 16  # 24 > 20: the oldest went
    cache.touch("b")
    cache.put("d", Block((), None, 8))
    assert cache.get("c") is None and cache.get("b") is not None and cache.tokens <= 20
    cache.put("huge", Block((), None, 21))
    assert cache.get("huge") is None and cache.tokens <= 20


def test_a_negative_bound_is_refused():
    with pytest.raises(ValueError):
        BlockCache(-1)
