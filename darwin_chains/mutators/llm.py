"""The LLM mutator: a policy rewrites the instruction; every rewrite is validated before a beam uses it.

It parses whatever list shape comes back (numbered, bulleted, JSON) and rejects anything that is not a rewrite
(an answer, a fragment, something off-topic, a rewrite that adds a direction the prompt rules out) before falling
back to the original instruction. What it rejected, and why, comes back with the variants (`Reported.rejected`),
so concurrent searches keep their own.
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any

from ..config import Sampling
from ..protocols import acomplete, complete
from ..protocols import Policy, Reported, Usage
from .directions import contradiction, directions

log = logging.getLogger(__name__)

MUTATION_PROMPT = (
    "Rewrite the instruction below in {n} different ways. Each rewrite must ask for exactly the same thing, so that "
    "one answer would satisfy all of them, but may be clearer, more specific, shorter or phrased differently. "
    "Do not answer the instruction. Reply with a numbered list of {n} rewrites, one per line, and nothing else.\n\n"
    "Instruction: {instruction}"
)


class LLMMutator:
    """Rewrites by a language model (any Policy), validated before use.

    A candidate is kept only if it is not empty or a duplicate, its length is within reason of the original, it
    adds no direction that the instruction or its context rules out ("in detail" where the prompt says "Be brief";
    `directions.py`), and, when an embedder is given, it stays close to the original in embedding space: answers
    and fragments do not. Missing variants fall back to the original instruction, with a logged warning.

    Example:
        >>> mutator = LLMMutator(policy, embedder=Embedder.minilm())
        >>> variants = mutator.mutate("Give three tips for writing a clear email.", 5, seed=0)
        >>> variants.rejected   # [(candidate, why), ...]; the search keeps them in trace.mutation_rejections
    """

    name = "llm"
    supports_context = True  # mutate takes context=: the prompt's text around the request

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

    def request(self, instruction: str, n: int) -> str:
        return self.prompt.replace("{n}", str(n)).replace("{instruction}", instruction)

    def mutate(self, instruction: str, n: int, seed: int, *, context: str = "") -> Reported:
        text, usage = complete(self.policy, self.request(instruction, n), self.max_new_tokens, self.sampling, seed)
        return self.select(instruction, parse_list(text), n, usage, context=context)

    async def amutate(self, instruction: str, n: int, seed: int, *, context: str = "") -> Reported:
        text, usage = await acomplete(self.policy, self.request(instruction, n), self.max_new_tokens, self.sampling,
                                      seed)
        return self.select(instruction, parse_list(text), n, usage, context=context)

    def select(self, instruction: str, candidates: list[str], n: int, usage: Usage | None = None, *,
               context: str = "") -> Reported:
        """The first `n` valid rewrites, padded with the original instruction, with the (candidate, why) rejected.

        `context` is the prompt's text around the instruction: its directions count as the instruction's own."""
        kept: list[str] = []
        rejected: list[tuple[str, str]] = []
        seen = {_norm(instruction)}
        own, given = directions(instruction), directions(f"{context}\n\n{instruction}")
        for c in candidates:
            why = self._problem(instruction, c, seen) or _contradicts(c, own, given)
            if why:
                rejected.append((c, why))
            else:
                kept.append(c)
                seen.add(_norm(c))
        if kept and self.embedder is not None:
            similarity = self.embedder.similarity(instruction, kept)
            for c, s in zip(list(kept), similarity):
                if s < self.min_similarity:
                    kept.remove(c)
                    rejected.append((c, f"similarity {s:.2f} < {self.min_similarity}: an answer, not a rewrite?"))
        if len(kept) < n:
            log.warning("LLM mutator kept %d of %d rewrites (%d rejected); the rest fall back to the original",
                        len(kept), n, len(rejected))
        return Reported((kept + [instruction] * n)[:n], usage, rejected=rejected)

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


def _contradicts(candidate: str, own: frozenset[str], given: frozenset[str]) -> str | None:
    """Why a rewrite's new directions (those the instruction itself lacks) contradict the prompt's, or None."""
    why = contradiction(directions(candidate) - own, given)
    return f"contradicts the prompt: {why}" if why else None


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
