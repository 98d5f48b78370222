"""Fixtures for the LlamaIndex integration: a real vector index over the cookbook's documents, with MiniLM."""
from __future__ import annotations

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


@pytest.fixture
def recorder():
    """An event handler on the root instrumentation dispatcher, removed after the test."""
    from llama_index.core.instrumentation import get_dispatcher

    root = get_dispatcher()
    handler = Recorder()
    root.add_event_handler(handler)
    yield handler
    root.event_handlers.remove(handler)
