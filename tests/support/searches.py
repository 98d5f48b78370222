"""Small search parts for tests on fakes: search sizes, a mutator that needs no model, policies that take their time,
show what every beam was asked or answer from a script, and a trace with its clocks taken out."""
from __future__ import annotations

import time
from typing import Any, Callable, List, Sequence

from darwin_chains import Beam, Prompt, Search, SearchConfig, Usage, defaults
from darwin_chains.testing import FakePolicy, KeywordReward

#: A search small enough for FakePolicy tests: three beams, four "tokens" a period, sixteen in all.
FAST = dict(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=16)
#: A search small enough for the embedded model on two cores.
SMALL = dict(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=24)


def fake_search(**config) -> Search:
    """A small search over FakePolicy, a keyword reward and the template mutator: for servers that need a search
    to serve, not a model. `config` overrides the SearchConfig fields."""
    config = {"mutants": 2, "keep_top": 1, "replacement_period": 4, "max_new_tokens": 8, "seed": None} | config
    return Search(FakePolicy(), KeywordReward(["cat"]), defaults.mutator("template"), SearchConfig(**config))


def suffix_mutator(instruction: str, n: int) -> list[str]:
    """`n` variants that differ from the instruction and from each other: "... v0", "... v1", ..."""
    return [f"{instruction} v{i}" for i in range(n)]


class SlowPolicy(FakePolicy):
    """A FakePolicy whose every extend blocks its thread for `delay` seconds, as model work does."""

    def __init__(self, delay: float = 0.02, **kwargs: Any):
        super().__init__(**kwargs)
        self.delay = delay

    def extend(self, *args: Any, **kwargs: Any) -> Usage:
        time.sleep(self.delay)
        return super().extend(*args, **kwargs)


class SpyPolicy:
    """Delegates to a real policy and records every prompt a beam is started from."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.prompts: List[Prompt] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> List[Beam]:
        self.prompts += prompts
        return self.inner.start(prompts, max_new_tokens)


class ScriptedChatPolicy:
    """Answers every prompt with `script(prompt)` in one piece, like a chat API; for driving an LLMMutator, a ReAct
    agent or a router. (darwin_chains.testing.ScriptedPolicy plays back queued texts instead, a token at a time.)"""

    name = "scripted"
    supports_continuation = False
    max_context = None

    def __init__(self, script: Callable[[Prompt], str]):
        self.script = script
        self.asked: List[Prompt] = []

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> List[Beam]:
        self.asked += prompts
        return [Beam(prompt=p) for p in prompts]

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Any, seed: int) -> Usage:
        for beam in beams:
            beam.response, beam.tokens, beam.finished = self.script(beam.prompt), 1, True
        return Usage(output_tokens=len(beams), requests=1)

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished)


def without_timings(data):
    """A trace with its wall-clock fields removed: everything else must be reproducible."""
    if isinstance(data, dict):
        return {k: without_timings(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [without_timings(v) for v in data]
    return data
