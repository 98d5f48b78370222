"""Mutators: rewrite an instruction into variants with the same intent (Darwin's exploration).

`TemplateMutator` needs no model: fixed augmentations that ask for steps, concision, examples or structure, and
that keep the instruction's text intact. It is the default for small policies, which cannot rewrite reliably.
`LLMMutator` asks a policy for rewrites, parses whatever list shape comes back, and rejects anything that is not a
rewrite (an answer, a fragment, something off-topic) before falling back to the original instruction.
"""
from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Sequence
from typing import Any

from .config import Sampling
from .errors import ConfigError
from .policies import acomplete, complete
from .protocols import Policy, Reported

log = logging.getLogger(__name__)

TEMPLATES: tuple[str, ...] = (
    "{instruction}\n\nAnswer step by step.",
    "{instruction}\n\nBe concise and specific.",
    "{instruction}\n\nInclude a concrete example.",
    "{instruction}\n\nOrganise the answer clearly, with a short list where it helps.",
    "{instruction}\n\nGive a thorough, detailed answer.",
    "{instruction}\n\nExplain it simply, for a reader new to the topic.",
    "{instruction}\n\nMake sure the answer is accurate and addresses exactly what is asked.",
    "Please answer the following helpfully and accurately.\n\n{instruction}",
)


class TemplateMutator:
    """Fixed, intent-preserving rewrites; a seeded draw decides which ones a cycle gets.

    Example:
        >>> TemplateMutator().mutate("Name a prime.", 2, seed=0)
        ['Name a prime.\\n\\nInclude a concrete example.', 'Name a prime.\\n\\nAnswer step by step.']
    """

    name = "template"

    def __init__(self, templates: Sequence[str] = TEMPLATES):
        if not templates or any("{instruction}" not in t for t in templates):
            raise ConfigError("every template must contain the placeholder {instruction}")
        self.templates = tuple(templates)

    def mutate(self, instruction: str, n: int, seed: int) -> list[str]:
        rng = random.Random(seed)
        # A later cycle mutates an archived variant: adding the same sentence twice would waste a beam.
        fresh = [t for t in self.templates if not _applied(t, instruction)] or list(self.templates)
        chosen: list[str] = []
        while len(chosen) < n:  # each template once before any repeats
            chosen += rng.sample(fresh, min(n - len(chosen), len(fresh)))
        return [t.replace("{instruction}", instruction) for t in chosen]


def _applied(template: str, instruction: str) -> bool:
    """Whether the instruction already carries everything the template adds."""
    added = [part.strip() for part in template.split("{instruction}") if part.strip()]
    return bool(added) and all(part in instruction for part in added)


MUTATION_PROMPT = (
    "Rewrite the instruction below in {n} different ways. Each rewrite must ask for exactly the same thing, so that "
    "one answer would satisfy all of them, but may be clearer, more specific, shorter or phrased differently. "
    "Do not answer the instruction. Reply with a numbered list of {n} rewrites, one per line, and nothing else.\n\n"
    "Instruction: {instruction}"
)


class LLMMutator:
    """Rewrites by a language model (any Policy), validated before use.

    A candidate is kept only if it is not empty or a duplicate, its length is within reason of the original, and,
    when an embedder is given, it stays close to the original in embedding space: answers and fragments do not.
    Missing variants fall back to the original instruction, with a logged warning.

    Example:
        >>> mutator = LLMMutator(policy, embedder=Embedder.minilm())
        >>> mutator.mutate("Give three tips for writing a clear email.", 5, seed=0)
    """

    name = "llm"

    def __init__(
        self,
        policy: Policy,
        *,
        embedder: Any = None,
        min_similarity: float = 0.6,
        max_length_ratio: float = 3.0,
        prompt: str = MUTATION_PROMPT,
        max_new_tokens: int = 256,
        sampling: Sampling = Sampling(temperature=0.8, top_p=0.95),
    ):
        self.policy, self.embedder, self.prompt = policy, embedder, prompt
        self.min_similarity, self.max_length_ratio = min_similarity, max_length_ratio
        self.max_new_tokens, self.sampling = max_new_tokens, sampling
        self.rejected: list[tuple[str, str]] = []  # (candidate, why), the last call's, for inspection

    def request(self, instruction: str, n: int) -> str:
        return self.prompt.replace("{n}", str(n)).replace("{instruction}", instruction)

    def mutate(self, instruction: str, n: int, seed: int) -> list[str]:
        text, usage = complete(self.policy, self.request(instruction, n), self.max_new_tokens, self.sampling, seed)
        return Reported(self.select(instruction, parse_list(text), n), usage)

    async def amutate(self, instruction: str, n: int, seed: int) -> list[str]:
        text, usage = await acomplete(self.policy, self.request(instruction, n), self.max_new_tokens, self.sampling,
                                      seed)
        return Reported(self.select(instruction, parse_list(text), n), usage)

    def select(self, instruction: str, candidates: list[str], n: int) -> list[str]:
        """The first `n` valid rewrites, padded with the original instruction."""
        self.rejected = []
        kept: list[str] = []
        seen = {_norm(instruction)}
        for c in candidates:
            why = self._problem(instruction, c, seen)
            if why:
                self.rejected.append((c, why))
            else:
                kept.append(c)
                seen.add(_norm(c))
        if kept and self.embedder is not None:
            similarity = self.embedder.similarity(instruction, kept)
            for c, s in zip(list(kept), similarity):
                if s < self.min_similarity:
                    kept.remove(c)
                    self.rejected.append((c, f"similarity {s:.2f} < {self.min_similarity}: an answer, not a rewrite?"))
        if len(kept) < n:
            log.warning("LLM mutator kept %d of %d rewrites (%d rejected); the rest fall back to the original",
                        len(kept), n, len(self.rejected))
        return (kept + [instruction] * n)[:n]

    def _problem(self, instruction: str, candidate: str, seen: set[str]) -> str | None:
        if not candidate.strip():
            return "empty"
        if _norm(candidate) in seen:
            return "duplicate"
        if len(candidate) > self.max_length_ratio * len(instruction) + 80:
            return "too long for a rewrite"
        if len(candidate) < 0.25 * len(instruction):
            return "too short for a rewrite"
        return None


def parse_list(text: str) -> list[str]:
    """Items of a JSON array (or an object holding one), a numbered list, or a bulleted list; else the lines."""
    text = text.strip()
    parsed = _json_items(text)
    if parsed is not None:
        return parsed
    items = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:\(?\d+[.):]|[-*\u2022])\s+(.*\S)", line)
        if m:
            items.append(_clean(m.group(1)))
    if items:
        return items
    return [_clean(line) for line in text.splitlines() if line.strip()]


def _json_items(text: str) -> list[str] | None:
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if isinstance(value, dict):
        value = next((v for v in value.values() if isinstance(v, list)), None)
    if not isinstance(value, list):
        return None
    return [_clean(v) for v in value if isinstance(v, str)]


def _clean(item: str) -> str:
    item = re.sub(r"^(?:rewrite|variant|version)\s*\d*\s*:\s*", "", item.strip(), flags=re.I)
    return item.strip().strip('"\u201c\u201d').strip()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
