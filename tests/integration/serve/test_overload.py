"""A full queue is answered at once with 429 and Retry-After; /health stays instant; the queued ones are served."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai

from .conftest import chat, wait_until
from .slow_server import slow_search


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_beyond_the_queue_a_429_with_retry_after(serve):
    server = serve(slow_search(0.2, max_new_tokens=16), max_concurrent=1, max_queue=2)  # 4 steps: 0.8 s each
    with httpx.Client(timeout=20) as client, ThreadPoolExecutor(3) as pool:
        held = [pool.submit(client.post, f"{server.url}/chat/completions", json=chat(f"say cat {i}"))
                for i in range(3)]
        assert wait_until(lambda: server.health() | {"status": "ok"} == {"status": "ok", "running": 1, "queued": 2},
                          2)
        started = time.monotonic()
        refused = client.post(f"{server.url}/chat/completions", json=chat("one too many"))
        assert time.monotonic() - started < 1.0, "refused at once, not after the 2.4 s of searches ahead"
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] in (429, "429") and "busy" in error["message"]
        assert min(timed(server.health) for _ in range(3)) < 0.2  # never waits behind searches
        replies = [f.result() for f in held]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert all(r.json()["choices"][0]["message"]["content"] for r in replies)
    assert server.health() == {"status": "ok", "running": 0, "queued": 0}


def test_retry_after_follows_recent_search_times(serve):
    server = serve(slow_search(0.3, max_new_tokens=16), max_concurrent=1, max_queue=0)  # 1.2 s a search
    with httpx.Client(timeout=20) as client:
        assert client.post(f"{server.url}/chat/completions", json=chat()).status_code == 200
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(client.post, f"{server.url}/chat/completions", json=chat("say mat"))
            assert wait_until(lambda: server.health()["running"] == 1, 2)
            refused = client.post(f"{server.url}/chat/completions", json=chat("no room"))
            assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"  # ceil(1.2 s)
            assert held.result().status_code == 200


def test_the_openai_client_sees_a_rate_limit_error(serve):
    server = serve(slow_search(0.2, max_new_tokens=12), max_concurrent=1, max_queue=0)
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=20)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(client.chat.completions.create, **chat())
        assert wait_until(lambda: server.health()["running"] == 1, 2)
        try:
            client.chat.completions.create(**chat("no room"))
            raise AssertionError("expected a 429")
        except openai.RateLimitError as exc:
            assert exc.response.headers["retry-after"] == "1"
        assert held.result().choices[0].message.content
