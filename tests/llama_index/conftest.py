"""Fixtures for the LlamaIndex integration: a real vector index over the cookbook's documents, with MiniLM."""
from __future__ import annotations

import time

import pytest

from .fakes import Recorder, load_cookbook


@pytest.fixture(scope="session")
def embed_model():
    """LlamaIndex's HuggingFaceEmbedding over the packaged all-MiniLM-L6-v2 (offline)."""
    from darwin_chains.embedded import minilm_dir
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(minilm_dir()))


@pytest.fixture(scope="session")
def rag_cookbook():
    """The query-engine cookbook as a module: its DOCUMENTS, QUESTION and build_index."""
    return load_cookbook("llama_index_query_engine")


@pytest.fixture(scope="session")
def minilm_index(rag_cookbook, embed_model):
    """A real in-memory VectorStoreIndex over the cookbook's eight documents."""
    return rag_cookbook.build_index(embed_model)


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
