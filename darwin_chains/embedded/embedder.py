"""Sentence embeddings from a Hugging Face encoder, mean-pooled and normalised as sentence-transformers does.

Used by the relevance reward, by the LLM mutator to tell a rewrite from an answer, and as a reward backbone.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..loading import LOCK, load_once
from ..modeling.threads import borrowed_threads


class Embedder:
    """Encodes texts into unit vectors; cosine similarity is then a dot product.

    Example:
        >>> e = Embedder.minilm()
        >>> e.encode(["a cat", "a kitten"]).shape
        torch.Size([2, 384])
    """

    def __init__(self, model, tokenizer, max_length: int = 256, batch_size: int = 32):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.name = Path(str(getattr(model, "name_or_path", "") or "encoder")).name
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> Embedder:
        with LOCK:
            from transformers import AutoModel, AutoTokenizer

            return cls(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), **kwargs)

    @classmethod
    def minilm(cls) -> Embedder:
        """The packaged all-MiniLM-L6-v2, loaded once per process."""
        return _minilm()

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    @borrowed_threads()
    def encode(self, texts: Sequence[str]):
        import torch

        chunks = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.model.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, self.dim, dtype=torch.float32)

    def similarity(self, anchor: str, texts: Sequence[str]) -> list[float]:
        """Cosine similarity of each text to the anchor."""
        vectors = self.encode([anchor, *texts]).numpy()
        return dots(vectors[1:], vectors[:1])[:, 0].tolist()


def dots(rows, columns) -> np.ndarray:
    """`rows @ columns.T`, each entry a dot product of its own. A matrix product's entries depend on how many rows it
    has (BLAS blocks them differently), and a response's score must not depend on which others it was scored beside."""
    rows, columns = np.asarray(rows), np.atleast_2d(np.asarray(columns))
    return (rows[:, None, :] * columns[None, :, :]).sum(-1)


class UsesEmbedder:
    """A component that embeds text: with the encoder it is given, else the packaged MiniLM, loaded at first use
    so that building the component stays instant."""

    def __init__(self, embedder: Embedder | None = None):
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder.minilm()
        return self._embedder


@load_once
def _minilm() -> Embedder:
    from . import minilm_dir

    return Embedder.from_pretrained(minilm_dir())
