"""Fixtures for the LlamaIndex adapter on real models: a real vector index over the cookbook's documents, with
MiniLM. The embedded SmolLM2 comes from the session fixture `smollm2_policy` (tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.support.cookbooks import load_cookbook
from tests.support.llama_index_fixtures import recorder, yielding_chat_stream_reader  # noqa: F401 (fixtures)


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
