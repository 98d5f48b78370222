"""`arun` never blocks the event loop, not even for an `OpenAIPolicy`'s first-use probe of a slow server."""
from __future__ import annotations

import asyncio
import time

import pytest

from darwin_chains import Search, SearchConfig
from darwin_chains.mutators import TemplateMutator
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.testing import KeywordReward

from .scripted_server import ScriptedServer

DELAY = 1.0


@pytest.fixture
def slow_server():
    server = ScriptedServer(delay=DELAY)
    yield server
    server.close()


async def test_another_coroutine_keeps_running_through_probe_and_completions(slow_server):
    policy = OpenAIPolicy.from_url("scripted", slow_server.url)  # mode "auto": the first use probes the server
    search = Search(policy, KeywordReward(["purr"]), TemplateMutator(),
                    SearchConfig(mutants=2, keep_top=1, max_new_tokens=16, seed=0))
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = started  # a loop held before the ticker's first turn shows in its first gap
        while not done.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async def searching():
        try:
            return await search.arun("Why do cats purr?")
        finally:
            done.set()

    started = time.monotonic()
    result, _ = await asyncio.gather(searching(), ticker())
    elapsed = time.monotonic() - started
    assert slow_server.probes() == 1 and policy.mode == "chat"
    assert result.answer == "Cats purr when they are content." and result.trace.granularity == "response"
    assert elapsed >= 2 * DELAY  # the probe, then the completions: the ticker ran through both
    # A request waited for on the loop would hold it for the server's whole DELAY.
    assert max(gaps) < 0.6 * DELAY, f"the event loop was blocked for {max(gaps):.2f} s"
