"""Graceful shutdown: the first SIGTERM or SIGINT stops taking work and gives running searches a grace period.

uvicorn already stops listening and waits for open connections on the first signal, but it waits for as long as
the searches take, and only a second SIGINT (not SIGTERM) forces it. This server builds on uvicorn's own
shutdown: waiting searches are refused with a 503 at once, running ones may finish within `shutdown_timeout`
seconds and are then cancelled (their clients get a 503), and a second signal of either kind exits at once.

Connections are bounded too. uvicorn closes an idle keep-alive connection after `timeout_keep_alive` seconds, but
waits forever for a request's headers; `Protocol` closes a connection whose headers have not all come within
`timeout_headers` seconds (the guard times out a slow body, `guard.py`). Past `max_connections` open connections
or running requests, uvicorn answers 503 itself.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import FrameType

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import access
from .admission import Admission

log = logging.getLogger(__name__)


class Server(uvicorn.Server):
    """uvicorn's server with a grace period for running searches, and a second signal that exits at once."""

    def __init__(self, config: uvicorn.Config, admission: Admission, shutdown_timeout: float):
        super().__init__(config)
        self.admission, self.shutdown_timeout = admission, shutdown_timeout

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:  # the second signal: no more waiting, not even for the step in flight
            print(f"darwin-chains: {signal.Signals(sig).name} again, exiting now", file=sys.stderr, flush=True)
            signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return
        print(f"darwin-chains: {signal.Signals(sig).name}, shutting down: {self.admission.running} running "
              f"search(es) get {self.shutdown_timeout:g} s to finish (signal again to exit now)",
              file=sys.stderr, flush=True)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets=None) -> None:
        self.admission.close()
        grace = asyncio.get_running_loop().call_later(self.shutdown_timeout, self._expire)
        try:
            await super().shutdown(sockets)
        finally:
            grace.cancel()

    def _expire(self) -> None:
        cancelled = self.admission.cancel_running()
        if cancelled:
            log.warning("shutdown timeout of %g s reached: cancelled %d running search(es)", self.shutdown_timeout,
                        cancelled)


class Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has sent no complete request headers for `timeout_headers`
    seconds: since it opened, or since its last response (`protocol(seconds)` makes the class)."""

    timeout_headers: float = 10.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._headers_due = self.loop.call_later(self.timeout_headers, self._headers_late)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._headers_due.cancel()
        self._headers_due = self.loop.call_later(self.timeout_headers, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_due.cancel()
        super().connection_lost(exc)

    def _headers_late(self) -> None:
        waiting = self.cycle is None or self.cycle.response_complete  # no request in hand: its headers are late
        if waiting and not self.transport.is_closing():
            log.info("closed a connection from %s: no complete request headers within %g s", self.client,
                     self.timeout_headers)
            self.transport.close()


def protocol(timeout_headers: float) -> type[Protocol]:
    return type("Protocol", (Protocol,), {"timeout_headers": timeout_headers})


def config(app, *, host: str, port: int, shutdown_timeout: float = 30.0, timeout_keep_alive: float = 5.0,
           timeout_headers: float = 10.0, max_connections: int | None = 256) -> uvicorn.Config:
    """uvicorn's configuration for `app`, with the connection bounds of the module docstring."""
    # uvicorn's own timeout is a backstop: cancelled searches answer within a step, so connections close first.
    return uvicorn.Config(app, host=host, port=port, log_level="warning", http=protocol(timeout_headers),
                          timeout_keep_alive=timeout_keep_alive, limit_concurrency=max_connections,
                          timeout_graceful_shutdown=shutdown_timeout + 10)


def serve(app, admission: Admission, *, host: str, port: int, shutdown_timeout: float, timeout_keep_alive: float = 5.0,
          timeout_headers: float = 10.0, max_connections: int | None = 256, access_log: bool = True) -> None:
    """Serve `app` until a signal; see the module docstring for what the signals do."""
    access.enable(access_log)
    settings = config(app, host=host, port=port, shutdown_timeout=shutdown_timeout,
                      timeout_keep_alive=timeout_keep_alive, timeout_headers=timeout_headers,
                      max_connections=max_connections)
    Server(settings, admission, shutdown_timeout).run()
