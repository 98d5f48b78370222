"""Small learned rewards: linear Bradley-Terry heads trained on GPT-4 Turbo's pairwise preferences.

Cosine relevance only rewards staying on topic. These heads were fitted to which of two answers AlpacaEval 2's GPT-4
Turbo judge preferred, and checked on the answers' first 40/80/160 tokens too, since Darwin compares partial
responses every period. Constructed pairs teach what the judged answers never show: an answer to another
instruction loses, and so does a looping one. Two backbones ship:

- `PreferenceReward` (the default): SmolLM2-135M's layer-15 hidden states of the response, read after the
  instruction (`hidden_states.ResponseEncoder`). Agrees with the judge far more often on length-matched pairs.
- `MiniLMPreferenceReward`: the packaged all-MiniLM-L6-v2 embeddings of instruction and response. Cheaper (no
  SmolLM2 forward pass), weaker.

The weights, their training settings and validation figures ship in `weights/`;
`python -m training.reward_training --backbone smollm2|minilm` rebuilds them (benchmarks/reward/README.md).
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

from ..devices import feature_dtype_name
from ..embedded.embedder import UsesEmbedder, dots
from ..errors import ConfigError
from ..prompt import Prompt
from .grounding import Groundedness
from .hidden_states import ResponseEncoder, shared_encoder

WEIGHTS = Path(__file__).resolve().parent / "weights" / "preference.json"
MINILM_WEIGHTS = WEIGHTS.with_name("preference-minilm.json")
FEATURES = ("hidden_state", "instruction*hidden_state", "cosine", "log_words")
MINILM_FEATURES = ("response", "instruction*response", "cosine", "style", "log_words")
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


def features(instruction: np.ndarray, hidden: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """One row per response: its mean SmolLM2 hidden state, its elementwise product with the instruction's, their
    cosine (these two let the head check the answer is about the instruction) and log word count (last). Shared by
    training and scoring so the two cannot drift apart."""
    hidden = np.asarray(hidden, dtype=np.float32).reshape(len(texts), -1)
    instruction = np.asarray(instruction, dtype=np.float32).reshape(-1)
    cosine = dots(hidden, instruction)[:, 0] / (np.linalg.norm(hidden, axis=1) * np.linalg.norm(instruction) + 1e-6)
    length = np.array([[log_words(t)] for t in texts], dtype=np.float32).reshape(len(texts), 1)
    return np.hstack([hidden, hidden * instruction, cosine[:, None], length])


def minilm_features(instruction: np.ndarray, responses: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """One row per response: its unit MiniLM embedding, its elementwise product with the instruction's, their
    cosine, surface style cues and log word count (last)."""
    responses = np.asarray(responses, dtype=np.float32).reshape(len(texts), -1)
    instruction = np.asarray(instruction, dtype=np.float32).reshape(-1)
    cosine = dots(responses, instruction)[:, 0]
    cues = np.array([style(t) for t in texts], dtype=np.float32).reshape(len(texts), len(STYLE))
    length = np.array([log_words(t) for t in texts], dtype=np.float32)
    return np.hstack([responses, responses * instruction, cosine[:, None], cues, length[:, None]])


class PreferenceHead:
    """The trained linear head: standardise the features, then a dot product. Scores are logits of a pairwise
    preference: a difference of 1 means the judge would prefer the higher one about 73% of the time."""

    def __init__(self, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray, bias: float, empty_score: float,
                 meta: dict[str, Any] | None = None, features: Sequence[str] = FEATURES):
        self.weights = np.asarray(weights, dtype=np.float32)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.bias = float(bias)
        self.empty_score = float(empty_score)
        self.meta = meta or {}
        self.features = tuple(features)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return dots((x - self.mean) / self.scale, self.weights)[:, 0] + self.bias

    @property
    def length_weight(self) -> float:
        """Score change per unit of log(1 + words), all else equal."""
        return float(self.weights[-1] / self.scale[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"format": "darwin-chains/preference-head@1", "features": list(self.features),
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
    def load(cls, path: str | Path, features: Sequence[str] = FEATURES) -> PreferenceHead:
        """Read a saved head, checking it was trained on `features` (the reward's feature layout)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"preference reward weights not found: {path}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"preference reward weights at {path} are unreadable: {exc}") from None
        try:
            if data.get("features") != list(features):
                raise ValueError(f"features {data.get('features')!r}, expected {list(features)!r}")
            head = cls(data["weights"], data["mean"], data["scale"], data["bias"], data["empty_score"],
                       {k: data[k] for k in ("training", "validation") if k in data}, features)
            n = len(head.weights)
            if not (n == len(head.mean) == len(head.scale)) or n < 3:
                raise ValueError("weights, mean and scale differ in length")
            if not (np.isfinite(head.weights).all() and np.isfinite(head.mean).all() and (head.scale > 0).all()
                    and math.isfinite(head.bias) and math.isfinite(head.empty_score)):
                raise ValueError("non-finite values")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"preference reward weights at {path} are corrupt: {exc}") from None
        return head


class _LearnedReward:
    """Scoring shared by the heads: empty responses get the head's `empty_score`, below what any training answer
    scored; the rest are scored in one batch against the original instruction (`prompt.instruction`), plus the
    groundedness term when the prompt carries context and the reward has one (`grounding.Groundedness`)."""

    head: PreferenceHead
    grounding: Groundedness | None = None

    def _features(self, instruction: str, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        responses = list(responses)
        scores = [self.head.empty_score] * len(responses)
        filled = [i for i, r in enumerate(responses) if r.strip()]
        if filled:
            texts = [responses[i] for i in filled]
            for i, s in zip(filled, self.head(self._features(prompt.instruction, texts)).tolist()):
                scores[i] = float(s) if math.isfinite(s) else self.head.empty_score
            if self.grounding is not None and self.grounding.applies(prompt):
                for i, g in zip(filled, self.grounding.score(prompt, texts)):
                    scores[i] += g
        return scores

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, prompt, responses)


class PreferenceReward(_LearnedReward):
    """The default reward: a head over SmolLM2's layer-15 hidden states of the response, read after the instruction,
    plus a groundedness term when the prompt has context (`Prompt.context`: a RAG chain's retrieved text).

    Without context, or with no facts in it ("Be brief."), the score is the head's alone. With it, answers whose
    numbers, names and facts the context does not support lose reward (`grounding.Groundedness`, weight measured in benchmarks/grounding/README.md);
    `grounding=False` keeps the head alone whatever the prompt holds, the context-blind reward.

    Construction only reads the head (44 KB of JSON); SmolLM2's first 15 layers load at the first score, once per
    process and dtype. Reads the first 256 tokens of each response, and from one period to the next only the tokens
    a beam added; concurrent searches' beams share one pass (`ResponseEncoder.means`).

    `dtype` is the encoder's (`devices.feature_dtype`): fp32 by default, in which a score does not depend on how it
    was computed (alone or beside other searches, read incrementally or afresh); "bf16" is faster on CPUs with
    native bf16 and approximate (benchmarks/reward/README.md).

    Example:
        >>> reward = PreferenceReward()
        >>> reward.score(Prompt.of("Give three tips for writing a clear email."), ["Use a clear subject...", ""])
    """

    name = "preference"

    def __init__(self, weights: str | Path | None = None, encoder: ResponseEncoder | None = None,
                 grounding: Groundedness | bool = True, dtype: Any = None):
        if encoder is not None and dtype is not None:
            raise ConfigError("PreferenceReward takes an encoder or a dtype, not both: the encoder has its own dtype")
        self.path = Path(weights) if weights is not None else WEIGHTS
        self.head = PreferenceHead.load(self.path, FEATURES)
        self._encoder = encoder
        # checked now, loaded at the first score (a name: construction imports no torch)
        self.dtype = feature_dtype_name(dtype if encoder is None else encoder.dtype)
        self.grounding = Groundedness() if grounding is True else grounding or None

    @property
    def encoder(self) -> ResponseEncoder:
        if self._encoder is None:
            self._encoder = shared_encoder(dtype=self.dtype)
        return self._encoder

    def _features(self, instruction: str, texts: list[str]) -> np.ndarray:
        encoder = self.encoder
        # `means`: only what is new since the last period is read, in one pass with concurrent searches' beams
        return features(encoder.instruction(instruction), encoder.means([(instruction, t) for t in texts]), texts)


class MiniLMPreferenceReward(UsesEmbedder, _LearnedReward):
    """A lighter head over the packaged MiniLM's embeddings of instruction and response: no SmolLM2 pass, but
    weaker on length-matched pairs (benchmarks/reward/README.md).

    Example:
        >>> MiniLMPreferenceReward().score(Prompt.of("Name a primary colour."), ["Red.", "Bananas."])
    """

    name = "preference-minilm"

    def __init__(self, weights: str | Path | None = None, embedder: Any = None):
        self.path = Path(weights) if weights is not None else MINILM_WEIGHTS
        self.head = PreferenceHead.load(self.path, MINILM_FEATURES)
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

    def _features(self, instruction: str, texts: list[str]) -> np.ndarray:
        return minilm_features(self._instruction_vector(instruction), self.embedder.encode(texts).numpy(), texts)


__all__ = ["PreferenceReward", "MiniLMPreferenceReward", "PreferenceHead", "features", "minilm_features", "WEIGHTS",
           "MINILM_WEIGHTS"]
