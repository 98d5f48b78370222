"""A small learned reward: a linear Bradley-Terry head over MiniLM features, trained on GPT-4 Turbo preferences.

Cosine relevance only rewards staying on topic. This head was fitted to which of two answers AlpacaEval 2's GPT-4
Turbo judge preferred, on whole answers and on their first 40/80/160 tokens, so it ranks the partial responses that
Darwin compares every period. It needs no model beyond the packaged all-MiniLM-L6-v2, and loads in well under a
second once MiniLM is loaded. The weights, their training settings and validation figures ship in
`weights/preference.json`; `python -m darwin_chains.reward_training` rebuilds them.
"""
from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..embeddings import UsesEmbedder
from ..errors import ConfigError
from ..prompt import Prompt

WEIGHTS = Path(__file__).resolve().parent / "weights" / "preference.json"
FEATURES = ("response", "instruction*response", "cosine", "style", "log_words")
STYLE = ("log_lines", "list_lines", "markdown", "distinct_trigrams", "log_sentence_words", "word_chars",
         "non_alpha", "refusal")
_LIST_LINE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s")
_REFUSAL = re.compile(r"\b(?:as an ai|language model|i'?m sorry|i cannot|i can'?t|i am not able)\b", re.I)


def log_words(text: str) -> float:
    """log(1 + number of whitespace-separated words): the explicit length feature (a length guard)."""
    return math.log1p(len(text.split()))


def style(text: str) -> list[float]:
    """Surface cues MiniLM's mean-pooled vector blurs: structure, loops, sentence length, refusals."""
    words = text.split()
    lines = [line for line in text.splitlines() if line.strip()]
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    sentences = max(1, len(re.findall(r"[.!?](?:\s|$)", text)))
    chars = max(1, len(text))
    return [
        math.log1p(len(lines)),
        sum(bool(_LIST_LINE.match(line)) for line in lines) / max(1, len(lines)),
        math.log1p(text.count("**") + sum(line.lstrip().startswith("#") for line in lines) + text.count("```")),
        len(set(grams)) / len(grams) if grams else 1.0,
        math.log1p(len(words) / sentences),
        sum(len(w) for w in words) / max(1, len(words)),
        sum(not (c.isalpha() or c.isspace()) for c in text) / chars,
        float(bool(_REFUSAL.search(text))),
    ]


def features(instruction: np.ndarray, responses: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """One row per response: its unit embedding, its elementwise product with the instruction's, their cosine,
    surface style cues and log word count (last). Shared by training and scoring so the two cannot drift apart."""
    responses = np.asarray(responses, dtype=np.float32).reshape(len(texts), -1)
    instruction = np.asarray(instruction, dtype=np.float32).reshape(-1)
    cosine = responses @ instruction
    cues = np.array([style(t) for t in texts], dtype=np.float32).reshape(len(texts), len(STYLE))
    length = np.array([log_words(t) for t in texts], dtype=np.float32)
    return np.hstack([responses, responses * instruction, cosine[:, None], cues, length[:, None]])


class PreferenceHead:
    """The trained linear head: standardise the features, then a dot product. Scores are logits of a pairwise
    preference: a difference of 1 means the judge would prefer the higher one about 73% of the time."""

    def __init__(self, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray, bias: float, empty_score: float,
                 meta: dict[str, Any] | None = None):
        self.weights = np.asarray(weights, dtype=np.float32)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.bias = float(bias)
        self.empty_score = float(empty_score)
        self.meta = meta or {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.weights + self.bias

    @property
    def length_weight(self) -> float:
        """Score change per unit of log(1 + words), all else equal."""
        return float(self.weights[-1] / self.scale[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"format": "darwin-chains/preference-head@1", "features": list(FEATURES),
                "weights": self.weights.tolist(), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "bias": self.bias, "empty_score": self.empty_score, **self.meta}

    def save(self, path: str | Path) -> None:
        def rounded(values: list[float]) -> list[float]:
            return [float(f"{v:.6g}") for v in values]

        data = self.to_dict()
        for key in ("weights", "mean", "scale"):
            data[key] = rounded(data[key])
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PreferenceHead:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"preference reward weights not found: {path}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"preference reward weights at {path} are unreadable: {exc}") from None
        try:
            if data.get("features") != list(FEATURES):
                raise ValueError(f"features {data.get('features')!r}, expected {list(FEATURES)!r}")
            head = cls(data["weights"], data["mean"], data["scale"], data["bias"], data["empty_score"],
                       {k: data[k] for k in ("training", "validation") if k in data})
            n = len(head.weights)
            if not (n == len(head.mean) == len(head.scale)) or n < 3:
                raise ValueError("weights, mean and scale differ in length")
            if not (np.isfinite(head.weights).all() and np.isfinite(head.mean).all() and (head.scale > 0).all()
                    and math.isfinite(head.bias) and math.isfinite(head.empty_score)):
                raise ValueError("non-finite values")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"preference reward weights at {path} are corrupt: {exc}") from None
        return head


class PreferenceReward(UsesEmbedder):
    """Scores responses, partial ones too, by a head trained on GPT-4 Turbo's pairwise preferences.

    Judges against the original instruction (`prompt.instruction`). An empty response gets the head's
    `empty_score`, below what the training answers scored.

    Example:
        >>> reward = PreferenceReward()
        >>> reward.score(Prompt.of("Give three tips for writing a clear email."), ["Use a clear subject...", ""])
    """

    name = "preference"

    def __init__(self, weights: str | Path | None = None, embedder: Any = None):
        self.path = Path(weights) if weights is not None else WEIGHTS
        self.head = PreferenceHead.load(self.path)
        super().__init__(embedder)
        self._instructions: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _instruction_vector(self, instruction: str) -> np.ndarray:
        # Darwin scores against the same instruction every period: embed it once.
        with self._lock:
            vector = self._instructions.get(instruction)
        if vector is None:
            vector = self.embedder.encode([instruction]).numpy()[0]
            with self._lock:
                self._instructions[instruction] = vector
                while len(self._instructions) > 64:
                    self._instructions.popitem(last=False)
        return vector

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        responses = list(responses)
        scores = [self.head.empty_score] * len(responses)
        filled = [i for i, r in enumerate(responses) if r.strip()]
        if filled:
            instruction = self._instruction_vector(prompt.instruction)
            texts = [responses[i] for i in filled]
            vectors = self.embedder.encode(texts).numpy()
            for i, s in zip(filled, self.head(features(instruction, vectors, texts)).tolist()):
                scores[i] = float(s) if math.isfinite(s) else self.head.empty_score
        return scores

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, prompt, responses)


__all__ = ["PreferenceReward", "PreferenceHead", "features", "WEIGHTS"]
