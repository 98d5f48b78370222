"""A slow fake policy, and a script that serves it through `darwin_chains.cli.serve.run` (the real lifecycle).

    python tests/integration/serve/slow_server.py --port N --delay 0.2 --shutdown-timeout 5

Each `extend` sleeps `delay` seconds, like a model's forward pass, and counts itself, so a test can see when a
search stops spending. Given a `gate` (a `threading.Event`), each `extend` first waits for it to be open, so a test
holds searches mid-flight for as long as it needs, whatever the host's speed.
"""
from __future__ import annotations

import argparse
import threading
import time

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.testing import FakePolicy, KeywordReward


#: The longest a gated step waits: far past any test's own deadlines, so a forgotten gate fails a test, not the run.
GATE_TIMEOUT = 120.0


class GatedSlowPolicy(FakePolicy):
    """FakePolicy whose every step takes `delay` seconds (in the worker thread, as a model's would), after waiting
    for `gate` when there is one."""

    def __init__(self, delay: float = 0.2, gate: threading.Event | None = None, **kw):
        super().__init__(**kw)
        self.delay, self.gate, self.steps, self.lock = delay, gate, 0, threading.Lock()

    def extend(self, beams, max_new_tokens, sampling, seed):
        if self.gate is not None:
            self.gate.wait(GATE_TIMEOUT)
        time.sleep(self.delay)
        with self.lock:
            self.steps += 1
        return super().extend(beams, max_new_tokens, sampling, seed)


def slow_search(delay: float = 0.2, gate: threading.Event | None = None, **config) -> Search:
    """A search of `max_new_tokens / replacement_period` steps of `delay` s each (defaults: 5 steps), each held
    until `gate` is open when one is given."""
    config = {"mutants": 2, "keep_top": 1, "replacement_period": 4, "max_new_tokens": 20, "seed": 0} | config
    return Search(GatedSlowPolicy(delay, gate), KeywordReward(["cat"]), defaults.mutator("template"),
                  SearchConfig(**config))


def main() -> None:
    from darwin_chains.cli.serve import run

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--shutdown-timeout", type=float, default=5.0)
    args = parser.parse_args()
    run(slow_search(args.delay), port=args.port, max_concurrent=args.max_concurrent,
        shutdown_timeout=args.shutdown_timeout)


if __name__ == "__main__":
    main()
