"""For the LlamaIndex adapter's tests, fast and integration alike: an instrumentation recorder, the searches it saw,
and the fixtures both folders' conftests import (tests/llama_index/, tests/integration/llama_index/).
"""
from __future__ import annotations

import time
from typing import Any, List

import pytest
from llama_index.core.instrumentation.event_handlers import BaseEventHandler


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


def methods(recorder: Recorder) -> list[str]:
    """The method of every search, in order: "darwin" for a search, "sample" for a plain step."""
    from llama_index.llms.darwin import DarwinSearchStartedEvent

    return [e.method for e in recorder.of(DarwinSearchStartedEvent)]


# -- fixtures (imported by tests/llama_index/conftest.py and tests/integration/llama_index/conftest.py) ----------


class _YieldingTime:
    """The `time` module, except that sleep(0) sleeps a millisecond."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(seconds, 0.001))


@pytest.fixture(scope="session", autouse=True)
def yielding_chat_stream_reader():
    """LlamaIndex's chat-engine stream reader polls its queue with time.sleep(0), spinning a core that the search
    writing the stream needs (a streamed SmolLM2 answer took 45 s instead of 31 s on two cores). A millisecond's
    sleep gives the core back; what the reader yields, and when, is unchanged."""
    from llama_index.core.chat_engine import types

    types.time = _YieldingTime()
    yield
    types.time = time


@pytest.fixture
def recorder():
    """An event handler on the root instrumentation dispatcher, removed after the test."""
    from llama_index.core.instrumentation import get_dispatcher

    root = get_dispatcher()
    handler = Recorder()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)
