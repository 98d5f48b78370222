"""A client that goes away cancels its search between steps: the policy stops being called within one step."""
from __future__ import annotations

import contextlib
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import chat, wait_until
from .slow_server import slow_search

DELAY = 0.2  # seconds per policy step
#: How long a step count must stay put to count as settled: five steps' worth of a search still going.
QUIET = 5 * DELAY


@contextlib.contextmanager
def posted(port: int, body: dict):
    """A chat request sent on a raw socket and never read; leaving the block closes the socket: the client left."""
    data = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        yield


def settled(read, quiet: float, seconds: float) -> int | None:
    """`read()` once it has stayed the same for `quiet` seconds; None if it still changes after `seconds`."""
    deadline = time.monotonic() + seconds
    value, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if (now := read()) != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    return None


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnected_client_cancels_its_search(serve, stream):
    search = slow_search(DELAY, replacement_period=2, max_new_tokens=400)  # 200 steps: 40 s if nobody stopped it
    server = serve(search)
    policy = search.policy
    with posted(server.port, chat(stream=stream)):
        assert wait_until(lambda: policy.steps >= 2, 10), "the search was running when the client left"
    assert wait_until(lambda: server.health()["running"] == 0, 10), "the search was cancelled"
    at_cancel = policy.steps
    # what was in flight when it was cancelled (the beams' step and the seed sample's) may end; nothing starts
    final = settled(lambda: policy.steps, QUIET, 10)
    assert final is not None and final <= at_cancel + 2, (at_cancel, final)
    time.sleep(QUIET)
    assert policy.steps == final
    assert wait_until(lambda: 'darwin_searches_total{outcome="disconnect"} 1.0'
                      in httpx.get(f"{server.base}/metrics").text, 10)
    # the server is free again: a small request is answered long before the cancelled search would have ended
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(max_tokens=4), timeout=30)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    assert time.monotonic() - started < 10


def test_a_client_that_leaves_the_queue_never_starts(serve, gate):
    search = slow_search(DELAY, gate, replacement_period=2, max_new_tokens=16, seed_sample=False)  # 8 steps
    server = serve(search, max_concurrent=1)
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(client.post, f"{server.url}/chat/completions", json=chat())
            assert wait_until(lambda: server.health()["running"] == 1, 10)
            with posted(server.port, chat(content="say mat")):
                assert wait_until(lambda: server.health()["queued"] == 1, 10)
            assert wait_until(lambda: server.health()["queued"] == 0, 10)
            assert server.health()["running"] == 1, "it left the queue without taking the place"
        finally:
            gate.set()
        assert first.result().status_code == 200
    assert wait_until(lambda: server.health()["running"] == 0, 10)
    time.sleep(2 * DELAY)
    assert search.policy.steps == 8, "only the first search ran"
