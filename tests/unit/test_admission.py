"""Admission's bookkeeping on a real event loop: places, the queue in arrival order, refusals, cancellation."""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains.cli.serve.admission import Admission, Cancelled, Disconnected, Refused


async def never() -> bool:
    return False


def test_places_queue_in_order_and_refuse_beyond():
    async def main():
        admission, order, gate = Admission(max_concurrent=1, max_queue=2), [], asyncio.Event()

        async def work(name):
            order.append(name)
            await gate.wait()
            return name

        tasks = [asyncio.create_task(admission.run(lambda n=n: work(n), never)) for n in "abc"]
        await asyncio.sleep(0.05)
        assert (admission.running, admission.queued) == (1, 2)
        with pytest.raises(Refused) as refused:
            await admission.run(lambda: work("d"), never)
        assert refused.value.status == 429 and refused.value.retry_after == 1
        gate.set()
        assert await asyncio.gather(*tasks) == ["a", "b", "c"] and order == ["a", "b", "c"]
        assert (admission.running, admission.queued) == (0, 0) and len(admission.durations) == 3

    asyncio.run(main())


def test_a_disconnect_cancels_the_work_and_frees_the_place():
    async def main():
        admission, gone, cancelled = Admission(max_concurrent=1, max_queue=1), asyncio.Event(), asyncio.Event()

        async def work():
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def left() -> bool:
            return gone.is_set()

        running = asyncio.create_task(admission.run(work, left))
        await asyncio.sleep(0.05)
        gone.set()
        with pytest.raises(Disconnected):
            await running
        await asyncio.wait_for(cancelled.wait(), 1)
        assert admission.running == 0 and admission.cancelled["disconnect"] == 1

    asyncio.run(main())


def test_close_refuses_the_waiting_and_cancel_running_ends_the_running():
    async def main():
        admission = Admission(max_concurrent=1, max_queue=1)
        running = asyncio.create_task(admission.run(lambda: asyncio.sleep(30), never))
        waiting = asyncio.create_task(admission.run(lambda: asyncio.sleep(30), never))
        await asyncio.sleep(0.05)
        admission.close()
        with pytest.raises(Refused) as refused:
            await waiting
        assert refused.value.status == 503
        with pytest.raises(Refused):
            await admission.run(lambda: asyncio.sleep(0), never)
        assert admission.cancel_running() == 1
        with pytest.raises(Cancelled):
            await running
        assert admission.running == 0

    asyncio.run(main())


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="max_concurrent"):
        Admission(max_concurrent=0)


def test_searches_start_only_while_the_running_ones_hold_at_most_max_tokens_and_in_order():
    """vLLM-style admission by cached tokens: 600 + 500 > 1000, so the second waits for the first, and the small
    third waits behind it rather than overtaking; a search alone always may start, whatever it holds."""
    async def main():
        admission = Admission(max_concurrent=8, max_queue=8, max_tokens=1000)
        gates = {name: asyncio.Event() for name in "abcd"}
        started = []

        async def work(name):
            started.append(name)
            await gates[name].wait()
            return name

        run = lambda name, tokens: asyncio.create_task(admission.run(lambda: work(name), never, tokens))  # noqa: E731
        a, b, c = run("a", 600), run("b", 500), run("c", 100)
        await asyncio.sleep(0.05)
        assert started == ["a"] and (admission.running, admission.queued, admission.held) == (1, 2, 600)
        gates["a"].set()
        await a
        await asyncio.sleep(0.05)
        assert started == ["a", "b", "c"] and admission.held == 600  # b and c fit together: 500 + 100
        gates["b"].set(), gates["c"].set()
        await asyncio.gather(b, c)
        d = run("d", 5000)  # more than max_tokens, but alone: it runs
        await asyncio.sleep(0.05)
        assert started[-1] == "d" and admission.held == 5000
        gates["d"].set()
        await d
        assert (admission.running, admission.held) == (0, 0)

    asyncio.run(main())
