"""`GET /metrics`: what the server is doing and has spent, in Prometheus text format (`prometheus-client`).

Each app has its own registry, not the process-wide one, so several apps in one process never clash. The gauges
read the admission's own counts, so they cannot drift from what the server does.
"""
from __future__ import annotations

from typing import Any

from ...errors import require
from ...trace import SearchResult
from .admission import Admission

#: Request latency buckets (seconds): a search takes from under a second (fakes) to minutes (large models).
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000)


class Metrics:
    """The server's Prometheus metrics; `render()` is the body of `/metrics`."""

    def __init__(self, admission: Admission):
        prom = require("prometheus_client", extra="serve", package="prometheus-client")
        self.registry = registry = prom.CollectorRegistry()
        running = prom.Gauge("darwin_searches_running", "Searches running now", registry=registry)
        running.set_function(lambda: admission.running)
        queued = prom.Gauge("darwin_searches_queued", "Searches waiting for a place", registry=registry)
        queued.set_function(lambda: admission.queued)
        self.searches = prom.Counter("darwin_searches", "Searches ended, by outcome (done, disconnect, shutdown, timeout, "
                                     "failed)", ["outcome"], registry=registry)
        self.tokens = prom.Counter("darwin_tokens", "Tokens the searches spent, by kind (generated, encoded)",
                                   ["kind"], registry=registry)
        self.reward_calls = prom.Counter("darwin_reward_calls", "Reward model calls", registry=registry)
        self.periods = prom.Counter("darwin_periods", "Replacement periods scored, over all searches",
                                    registry=registry)
        self.search_seconds = prom.Counter("darwin_search_seconds", "Seconds spent in finished searches",
                                           registry=registry)
        self.errors = prom.Counter("darwin_errors", "Requests answered with an error, by status", ["status"],
                                   registry=registry)
        self.latency = prom.Histogram("darwin_request_seconds", "Chat completion request latency", buckets=BUCKETS,
                                      registry=registry)
        self._render, self.content_type = prom.generate_latest, prom.CONTENT_TYPE_LATEST

    def finished(self, result: SearchResult) -> None:
        """Count what one finished search spent, from its trace."""
        trace = result.trace
        self.searches.labels("done").inc()
        self.tokens.labels("generated").inc(trace.tokens_generated)
        self.tokens.labels("encoded").inc(trace.tokens_encoded)
        self.reward_calls.inc(trace.reward_calls)
        self.search_seconds.inc(trace.seconds)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """A search's progress event; periods are counted live, so a cancelled search's work shows too."""
        if kind == "period_scored":
            self.periods.inc()

    def render(self) -> bytes:
        return self._render(self.registry)
