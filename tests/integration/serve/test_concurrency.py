"""Concurrent requests are concurrent searches: none waits for another's turn, and over a local policy their beams
share one batch.

The embedded SmolLM2 serves 16 requests sent at once through the real `openai` client; the policy's engine
records the most rows it decoded in one step, which only searches running side by side can push past one
search's beams.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.testing import FakePolicy, KeywordReward

from .conftest import chat

#: Two beams a search and no seed sample, so one search alone never decodes more than two rows at once.
CONFIG = SearchConfig(mutants=2, keep_top=1, replacement_period=8, max_new_tokens=16, seed_sample=False)


def test_more_searches_than_asyncio_has_threads_all_run_at_once(serve):
    # Each search's first reward call waits until as many are waiting as searches run: asyncio's default pool
    # (the core count + 4, at most 32) would hold one of them back, the barrier would break and every request fail.
    n = min(32, (os.cpu_count() or 1) + 4) + 1
    barrier, calls, lock = threading.Barrier(n, timeout=20), [0], threading.Lock()

    def reward(instruction: str, response: str) -> float:
        with lock:
            calls[0] += 1
            first = calls[0] <= n  # a search scores again only after its first call returned: n searches
        if first:
            barrier.wait()
        return float(len(response))

    search = Search(FakePolicy(), reward, defaults.mutator("template"), CONFIG)
    server = serve(search, max_concurrent=n, max_queue=0, preload=False)  # a warm-up would score first
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda i: httpx.post(f"{server.url}/chat/completions", json=chat(f"say cat {i}"),
                                                     timeout=60), range(n)))
    assert [r.status_code for r in replies] == [200] * n


def test_concurrent_requests_share_the_local_models_batch(serve, smollm2_policy):
    search = Search(smollm2_policy, KeywordReward(["email"]), defaults.mutator("template"), CONFIG)
    server = serve(search)  # the default max_concurrent
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)

    def ask(i: int):
        return client.chat.completions.with_raw_response.create(
            model="darwin", messages=[{"role": "user", "content": f"Give tip {i} for writing a clear email."}],
            max_tokens=16, seed=i)

    smollm2_policy.engine.peak_rows = 0
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(ask, range(16)))
    assert [r.status_code for r in replies] == [200] * 16
    answers = [r.parse().choices[0].message.content for r in replies]
    assert all(a.strip() for a in answers)
    assert smollm2_policy.engine.peak_rows > CONFIG.beams  # rows of several searches in one step
    # Sharing the batch changes no answer: the same request alone gets the same one.
    smollm2_policy.engine.peak_rows = 0
    assert ask(3).parse().choices[0].message.content == answers[3]
    assert smollm2_policy.engine.peak_rows == CONFIG.beams
