"""Readiness: the models load at start-up, not on the first request, and the server says when it can serve.

Loading the default reward's encoder and MiniLM takes tens of seconds in a fresh process; on the first request
that time would be booked as the search's, and `/health` would say ok while nothing could answer. So the server
warms its components up as it starts (`--no-preload` turns it off), `/health` says "loading" until then, requests
that come meanwhile wait, and `/ready` also asks every component that has a `health()` (a remote policy: is its
server there?).
"""
from __future__ import annotations

import asyncio
import logging
import time

from ...prompt import Prompt
from ...search import Search
from .guard import redact

log = logging.getLogger(__name__)

#: What the warm-up scores: a prompt with context, so a reward's groundedness term loads its encoder too.
WARM_UP = Prompt.of([{"role": "system", "content": "Context: The library opens at 9 AM on weekdays."},
                     {"role": "user", "content": "When does the library open?"}])


class Readiness:
    """Whether `search`'s components are loaded: `await readiness.wait()` before a search, `status` for /health."""

    def __init__(self, search: Search, preload: bool = True, secrets: list[str | None] = ()):
        self.search, self.preload, self.secrets = search, preload, list(secrets)
        self.loaded = asyncio.Event()
        self.error: str | None = None
        self.seconds: float | None = None
        if not preload:
            self.loaded.set()

    @property
    def status(self) -> str:
        return "failed" if self.error else "ok" if self.loaded.is_set() else "loading"

    async def load(self) -> None:
        """Warm the components up in a worker thread; a failure is logged and reported, never raised."""
        if self.loaded.is_set():
            return
        started = time.perf_counter()
        try:
            await asyncio.to_thread(warm_up, self.search)
        except Exception as exc:  # noqa: BLE001 - reported by /health and /ready, and in the log
            self.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.error("loading the models failed: %s", self.error)
        self.seconds = time.perf_counter() - started
        log.info("models loaded in %.1f s", self.seconds)
        self.loaded.set()

    async def wait(self) -> None:
        await self.loaded.wait()

    async def problems(self) -> list[str]:
        """What keeps the server from serving now: loading, a failed load, an unreachable upstream."""
        if not self.loaded.is_set():
            return ["the models are still loading"]
        found = [f"loading the models failed: {self.error}"] if self.error else []
        for component in (self.search.policy, self.search.reward, self.search.mutator):
            check = getattr(component, "health", None)
            if callable(check) and (problem := await asyncio.to_thread(check)):
                found.append(problem)
        return [redact(p, self.secrets) for p in found]  # an upstream's reply may echo a key


def warm_up(search: Search) -> None:
    """What the first request would otherwise load: the reward's models (scored once) and how a remote policy
    speaks (asked once)."""
    _ = search.policy.supports_continuation
    search.reward.score(WARM_UP, ["It opens at 9 AM on weekdays."])


__all__ = ["Readiness", "warm_up"]
