"""Graceful shutdown: the first SIGTERM or SIGINT stops taking work and gives running searches a grace period.

uvicorn already stops listening and waits for open connections on the first signal, but it waits for as long as
the searches take, and only a second SIGINT (not SIGTERM) forces it. This server builds on uvicorn's own
shutdown: waiting searches are refused with a 503 at once, running ones may finish within `shutdown_timeout`
seconds and are then cancelled (their clients get a 503), and a second signal of either kind exits at once.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from types import FrameType

import uvicorn

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


def serve(app, admission: Admission, *, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve `app` until a signal; see the module docstring for what the signals do."""
    # uvicorn's own timeout is a backstop: cancelled searches answer within a step, so connections close first.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                            timeout_graceful_shutdown=shutdown_timeout + 10)
    Server(config, admission, shutdown_timeout).run()
