"""The packaged all-MiniLM-L6-v2 as LangChain Embeddings, for retrieval that runs offline.

It is the encoder the default reward already loads, so a RAG chain and its reward share one model in memory,
and it needs no dependency beyond darwin-chains itself (no sentence-transformers, no model hub).
"""
from __future__ import annotations

import asyncio

from darwin_chains.adapters import UsesEmbedder
from langchain_core.embeddings import Embeddings


class MiniLMEmbeddings(UsesEmbedder, Embeddings):
    """Sentence embeddings (384 dimensions, unit length) from a darwin_chains Embedder.

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> store = InMemoryVectorStore.from_texts(["Cats purr.", "Paris is in France."], MiniLMEmbeddings())
        >>> store.similarity_search("Why do cats purr?", k=1)[0].page_content
        'Cats purr.'

    Args:
        embedder: a `darwin_chains.embedded.embedder.Embedder`; None loads the packaged MiniLM on first use (once per
            process).
    """

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.encode(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)
