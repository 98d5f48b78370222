"""A slow fake policy, and a script that serves it through `darwin_chains.cli.serve.run` (the real lifecycle).

    python tests/integration/serve/slow_server.py --port N --delay 0.2 --shutdown-timeout 5

Each `extend` sleeps `delay` seconds, like a model's forward pass, and counts itself, so a test can see when a
search stops spending.
"""
from __future__ import annotations

import argparse
import threading
import time

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.testing import FakePolicy, KeywordReward


class SlowPolicy(FakePolicy):
    """FakePolicy whose every step takes `delay` seconds (in the worker thread, as a model's would)."""

    def __init__(self, delay: float = 0.2, **kw):
        super().__init__(**kw)
        self.delay, self.steps, self.lock = delay, 0, threading.Lock()

    def extend(self, beams, max_new_tokens, sampling, seed):
        time.sleep(self.delay)
        with self.lock:
            self.steps += 1
        return super().extend(beams, max_new_tokens, sampling, seed)


def slow_search(delay: float = 0.2, **config) -> Search:
    """A search of `max_new_tokens / replacement_period` steps of `delay` s each (defaults: 5 steps)."""
    config = {"mutants": 2, "keep_top": 1, "replacement_period": 4, "max_new_tokens": 20, "seed": 0} | config
    return Search(SlowPolicy(delay), KeywordReward(["cat"]), defaults.mutator("template"), SearchConfig(**config))


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
