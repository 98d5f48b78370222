"""A full queue is answered at once with 429 and Retry-After; /health answers meanwhile; the queued ones are served.

The admitted searches are held on a gate until the refusal has been seen, so a refusal that waited for a place
would never come, however fast or loaded the host.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from .conftest import chat, wait_until
from .slow_server import slow_search

#: Far longer than any refusal takes, far shorter than the gate holds a search.
REFUSAL_TIMEOUT = 10


def test_beyond_the_queue_a_429_with_retry_after(serve, gate):
    server = serve(slow_search(0.0, gate, max_new_tokens=16), max_concurrent=1, max_queue=2)
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(3) as pool:
        try:
            held = [pool.submit(client.post, f"{server.url}/chat/completions", json=chat(f"say cat {i}"))
                    for i in range(3)]
            full = {"status": "ok", "running": 1, "queued": 2}
            assert wait_until(lambda: server.health() | {"status": "ok"} == full, 10)
            refused = client.post(f"{server.url}/chat/completions", json=chat("one too many"),
                                  timeout=REFUSAL_TIMEOUT)
            assert server.health() | {"status": "ok"} == full, "/health answers beside the held searches"
        finally:
            gate.set()
        replies = [f.result() for f in held]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1", "no search has finished, so nothing to go by but the floor"
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] in (429, "429") and "busy" in error["message"]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert all(r.json()["choices"][0]["message"]["content"] for r in replies)
    assert server.health() == {"status": "ok", "running": 0, "queued": 0}


def test_retry_after_follows_recent_search_times(serve, gate):
    """Retry-After is the finished search's time rounded up (one place): at least its own traced seconds, at most
    what the client waited for it."""
    server = serve(slow_search(0.3, gate, max_new_tokens=28), max_concurrent=1, max_queue=0)  # 7 steps in a row
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(1) as pool:
        gate.set()
        started = time.monotonic()
        first = client.post(f"{server.url}/chat/completions", json=chat())
        waited = time.monotonic() - started
        assert first.status_code == 200
        gate.clear()
        try:
            held = pool.submit(client.post, f"{server.url}/chat/completions", json=chat("say mat"))
            assert wait_until(lambda: server.health()["running"] == 1, 10)
            refused = client.post(f"{server.url}/chat/completions", json=chat("no room"), timeout=REFUSAL_TIMEOUT)
        finally:
            gate.set()
        assert held.result().status_code == 200
    searched = first.json()["darwin"]["trace"]["seconds"]
    assert refused.status_code == 429
    assert 3 <= math.ceil(searched) <= int(refused.headers["Retry-After"]) <= math.ceil(waited), (searched, waited)


def test_the_openai_client_sees_a_rate_limit_error(serve, gate):
    server = serve(slow_search(0.0, gate, max_new_tokens=12), max_concurrent=1, max_queue=0)
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        try:
            held = pool.submit(client.chat.completions.create, **chat())
            assert wait_until(lambda: server.health()["running"] == 1, 10)
            try:
                client.with_options(timeout=REFUSAL_TIMEOUT).chat.completions.create(**chat("no room"))
                raise AssertionError("expected a 429")
            except openai.RateLimitError as exc:
                assert exc.response.headers["retry-after"] == "1", "no search has finished yet"
        finally:
            gate.set()
        assert held.result().choices[0].message.content
