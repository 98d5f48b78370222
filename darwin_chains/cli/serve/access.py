"""One access log line per request, refusals included, in uvicorn's style with the time the request took:

    127.0.0.1:51234 - "POST /v1/chat/completions HTTP/1.1" 400 3.1 ms

Only the method, the path (no query string, key-shaped text redacted), the status, the time and the client's
address are written: never a header, so never a key. uvicorn's own access log would miss the time; `serve` turns
this one on (`--no-access-log` keeps it off).
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from .guard import redact

log = logging.getLogger(__name__)


class AccessLog:
    """ASGI middleware: `app.add_middleware(AccessLog, secrets=[api_key])`; outermost, so the guard's refusals and
    the crashes that become a 500 are logged too."""

    def __init__(self, app: Any, *, secrets: Iterable[str | None] = ()):
        self.app, self.secrets = app, list(secrets)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), None

        async def sent(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        except Exception:
            status = status or 500  # the app crashed: the error middleware outside answers 500
            raise
        finally:
            client = scope.get("client")
            path = redact(ascii(scope.get("path", ""))[1:-1][:200], self.secrets)
            log.info('%s - "%s %s HTTP/%s" %s %.1f ms', f"{client[0]}:{client[1]}" if client else "-",
                     scope.get("method"), path, scope.get("http_version", "1.1"), status or "-",
                     1000 * (time.perf_counter() - started))


def enable(on: bool = True) -> None:
    """Write the access log to stderr (through the root logger's handler when there is one), or stop writing it."""
    log.setLevel(logging.INFO if on else logging.WARNING)
    if on and not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("darwin-chains: %(message)s"))
        log.addHandler(handler)
        log.propagate = False
