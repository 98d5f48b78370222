"""A client that goes away cancels its search between steps: the policy stops being called within one step."""
from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from .conftest import chat, wait_until
from .slow_server import slow_search

DELAY = 0.2  # seconds per policy step


def post_and_leave(port: int, body: dict, after: float) -> None:
    """Send a chat request on a raw socket, wait `after` seconds, and close it without reading the answer."""
    data = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        time.sleep(after)


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnected_client_cancels_its_search(serve, stream):
    search = slow_search(DELAY, replacement_period=2, max_new_tokens=80)  # 40 steps: 8 s if nobody stopped it
    server = serve(search)
    policy = search.policy
    post_and_leave(server.port, chat(stream=stream), after=0.7)
    at_leave = policy.steps
    assert at_leave >= 2, "the search was running when the client left"
    assert wait_until(lambda: server.health()["running"] == 0, 0.5)
    # one poll period to notice, and the step in flight (counted when it ends); then not one more step
    time.sleep(0.1 + DELAY + 0.1)
    settled = policy.steps
    assert settled <= at_leave + 2
    time.sleep(3 * DELAY)
    assert policy.steps == settled
    metrics = httpx.get(f"{server.base}/metrics").text
    assert 'darwin_searches_total{outcome="disconnect"} 1.0' in metrics
    # the server is free again: a small request is answered at once
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(max_tokens=4), timeout=10)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    assert time.monotonic() - started < 2


def test_a_client_that_leaves_the_queue_never_starts(serve):
    search = slow_search(DELAY, replacement_period=2, max_new_tokens=16, seed_sample=False)  # 8 steps, 1.6 s
    server = serve(search, max_concurrent=1)
    with httpx.Client(timeout=20) as client:
        first = {}
        runner = threading.Thread(target=lambda: first.update(r=client.post(f"{server.url}/chat/completions",
                                                                              json=chat())))
        runner.start()
        assert wait_until(lambda: server.health()["running"] == 1, 2)
        post_and_leave(server.port, chat(content="say mat"), after=0.4)  # it waited, then left
        assert wait_until(lambda: server.health()["queued"] == 0, 1.0)
        runner.join(10)
    assert first["r"].status_code == 200
    time.sleep(2 * DELAY)
    assert search.policy.steps == 8, "only the first search ran"
