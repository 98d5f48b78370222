"""Fixtures for the LlamaIndex adapter's fast tests (scripted fakes, no model); the tests on the embedded models and
a real MiniLM index are in tests/integration/llama_index/."""
from __future__ import annotations

from tests.support.llama_index_fixtures import recorder, yielding_chat_stream_reader  # noqa: F401 (fixtures)
