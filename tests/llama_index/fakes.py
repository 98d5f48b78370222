"""Test doubles that wrap or script policies, so tests can see exactly what every beam was asked."""
from __future__ import annotations

import time
from typing import Any, Callable, List, Sequence

from darwin_chains import Beam, Prompt, Usage
from darwin_chains.testing import FakePolicy
from llama_index.core.instrumentation.event_handlers import BaseEventHandler

from ..cookbooks import COOKBOOK, load_cookbook  # noqa: F401 (re-exported for the tests here)


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


class ScriptedPolicy:
    """Answers every prompt with `script(prompt)` in one piece, like a chat API; for driving an LLMMutator."""

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


class SlowPolicy(FakePolicy):
    """A FakePolicy whose every extend blocks its thread for `delay` seconds, as model work does."""

    def __init__(self, delay: float = 0.05, **kwargs: Any):
        super().__init__(**kwargs)
        self.delay = delay

    def extend(self, *args: Any, **kwargs: Any) -> Usage:
        time.sleep(self.delay)
        return super().extend(*args, **kwargs)


class Recorder(BaseEventHandler):
    """An instrumentation handler that keeps every event it sees."""

    events: List[Any] = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, *types: type) -> List[Any]:
        return [e for e in self.events if isinstance(e, types)]
