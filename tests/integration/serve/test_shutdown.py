"""SIGTERM with searches in flight: running ones finish within the grace period, the rest are cancelled, and a
second signal exits at once. The server is a real subprocess (`slow_server.py` through `cli.serve.run`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..servers import free_port, wait_ready
from .conftest import chat, wait_until

SCRIPT = Path(__file__).with_name("slow_server.py")
ROOT = Path(__file__).parents[3]


@pytest.fixture
def start():
    """`start(shutdown_timeout, delay)`: the slow server in a subprocess, and its base URL; killed after the test."""
    processes = []

    def launch(shutdown_timeout: float, delay: float = 0.2):
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(port), "--delay", str(delay),
                                    "--shutdown-timeout", str(shutdown_timeout)], env=env, cwd=ROOT,
                                   stderr=subprocess.PIPE, text=True)
        processes.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/health", 30, process)
        return process, base

    yield launch
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stderr.close()


def running(base: str, n: int) -> bool:
    return httpx.get(f"{base}/health", timeout=2).json()["running"] == n


def post(base: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)


def test_sigterm_lets_the_running_search_finish_and_refuses_the_rest(start):
    process, base = start(shutdown_timeout=10)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, base, chat(max_tokens=40))  # 10 steps of 0.2 s: still running at the signal
        assert wait_until(lambda: running(base, 1), 10)
        queued = pool.submit(post, base, chat("say mat"))
        assert wait_until(lambda: httpx.get(f"{base}/health", timeout=2).json()["queued"] == 1, 10)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert queued.result().status_code == 503  # waiting searches are refused at once
        assert "shutting down" in queued.result().json()["error"]["message"]
        reply = first.result()
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    process.wait(10)
    assert time.monotonic() - signalled < 8 and process.returncode in (0, -signal.SIGTERM)  # not the 10 s grace
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/health", timeout=2)


def test_at_the_shutdown_timeout_running_searches_are_cancelled(start):
    process, base = start(shutdown_timeout=1)
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(post, base, chat(max_tokens=400))  # 100 steps: 20 s
        assert wait_until(lambda: running(base, 1), 10)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        reply = long.result()
        answered = time.monotonic() - signalled
    assert reply.status_code == 503 and "shut down before the search finished" in reply.json()["error"]["message"]
    assert 0.9 < answered < 8  # the 1 s grace, not the 20 s search
    process.wait(10)
    assert time.monotonic() - signalled < 8
    assert "cancelled 1 running search" in process.stderr.read()


def test_a_second_signal_exits_at_once(start):
    process, base = start(shutdown_timeout=30)
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(post, base, chat(max_tokens=400))  # 20 s
        assert wait_until(lambda: running(base, 1), 10)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None, "the first signal waits for the running search"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        assert time.monotonic() - signalled < 5  # not the 20 s search nor the 30 s grace
        assert process.returncode == -signal.SIGTERM
        with pytest.raises(httpx.HTTPError):
            long.result()
