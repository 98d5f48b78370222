"""The serve tests' helpers: a real uvicorn server in a thread on a free loopback port, over a slow fake policy."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from darwin_chains.cli.serve import create_app

from ..servers import free_port
from .slow_server import slow_search


def wait_until(check, seconds: float, step: float = 0.05) -> bool:
    """Poll `check()` until it is true, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


#: `Server` options that configure uvicorn rather than the app.
SERVER_OPTIONS = ("shutdown_timeout", "timeout_keep_alive", "timeout_headers", "max_connections")


class Server:
    """The app in a real uvicorn server, in a thread, on a free loopback port."""

    def __init__(self, search, wait: bool = True, **options):
        """`options` go to `create_app`, or to uvicorn's configuration as `serve` makes it (`lifecycle.config`:
        timeouts, connections). `wait`: until /health says ok (the models loaded); without, until the server
        answers at all."""
        import uvicorn

        from darwin_chains.cli.serve import lifecycle

        server = {k: options.pop(k) for k in SERVER_OPTIONS if k in options}
        self.search, self.port = search, free_port()
        self.app = create_app(search, **options)
        self.server = uvicorn.Server(lifecycle.config(self.app, host="127.0.0.1", port=self.port, **server))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/v1"
        assert wait_until(lambda: self.up(ready=wait), 20), "the server did not start"

    def up(self, ready: bool = True) -> bool:
        try:
            return httpx.get(f"{self.base}/health", timeout=1).status_code in ((200,) if ready else (200, 503))
        except httpx.HTTPError:
            return False

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def health(self) -> dict:
        return httpx.get(f"{self.base}/health", timeout=2).json()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve():
    """`serve(search, **create_app options)` starts a server; all are stopped after the test."""
    servers = []

    def start(search=None, **options):
        servers.append(Server(search or slow_search(), **options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def gate(serve):
    """A closed gate for `slow_search(gate=...)`; opened after the test, before its servers stop, so no held step
    outlives it."""
    event = threading.Event()
    yield event
    event.set()


def chat(content: str = "say cat", **fields) -> dict:
    return {"model": "darwin", "messages": [{"role": "user", "content": content}], **fields}
