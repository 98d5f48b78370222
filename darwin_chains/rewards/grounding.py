"""Groundedness: does an answer say what the prompt's context says, or something it made up?

A RAG prompt carries retrieved text (`Prompt.context`: system messages, earlier turns, text around the request). A
reward that reads only the request cannot tell "opens at 7:15 AM every weekday" (in the notes) from "opens on
Monday, June 15th" (nowhere in them). This term can, in two parts:

- **Unsupported specifics.** The answer's numbers, times, dates, capitalised names and content words are looked up
  in the context and the request. Each one found in neither costs 1 (numbers, names) or 0.2 (plain content words,
  which paraphrase legitimately adds). Number words count as digits ("three" is "3"); words match by a crude stem.
  A sentence unrelated to the context (MiniLM cosine to every context chunk below 0.15, rising to full weight at
  0.4) is not checked: a persona system prompt ("You are a helpful assistant") is no evidence either way.
- **Values from the wrong place.** A number, month, weekday or am/pm that *is* in the context may still belong to
  something else ("9 AM" on weekdays, when the notes give 9 AM for weekends). The reader (`reader.py`, the packaged
  SmolLM2 reading the prompt, then the sentence) says how much it doubts the value there; the cost ramps from 0 at
  1 nat of doubt to a full unsupported value at 3 (`DOUBT`).
- **Support.** The mean over the answer's sentences of their best MiniLM cosine to a context chunk, gated the
  same way, so an answer unrelated to the context gets neither bonus nor cost.

`verdict` turns the same checks into a yes/no for one answer, with what is unsupported (a value the context never
gives, or one the reader doubts by `FLAG` nats or more) and a score from 0 to 1: the share of the answer's checked
values that the context supports. Searches attach it to their result (`SearchResult.grounding`).

The term is `weight * (support - unsupported)`, added to the preference head's logit. It applies only when the
context has facts to check (a number or a name, or a dozen content words): "Be brief." or "You are a helpful
assistant." leave the score exactly as it was. It reads partial responses: the last word is left out while it may
still be growing (no space or punctuation after it), so "7:1" of "7:15" costs nothing. Context chunks are
embedded once per context, answer sentences once each (Darwin rescores the same sentences every period), both
with the packaged MiniLM that other components already load.

`WEIGHT` was measured, not guessed (benchmarks/grounding/README.md): on the dev half (77) of 160 labelled
(grounded answer, same answer with one fact changed) pairs, the preference head alone prefers the grounded answer
in about half of them; the share rises with the weight and levels off at 0.5 (98.7%). 0.5 is the smallest weight
on the grid within one point of the best dev share: the term then decides between supported and made-up facts
while overriding the head's ordering of equally grounded answers as little as the data allow. The test half,
reported beside it, agrees (98.8%). With the reader, the grounded answer also wins 90.5% of the swaps (values
from the same passage; 42.9% without it) and 96.4% of held-out swaps across passages.
"""
from __future__ import annotations

import asyncio
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..embedded.embedder import UsesEmbedder, dots
from ..loading import load_once
from ..prompt import Prompt

WEIGHT = 0.5
STRONG, WEAK = 1.0, 0.2  # cost of an unsupported number or name, and of an unsupported content word
SENTENCE_CACHE = 2048  # answer sentences' embeddings kept
GATE = (0.15, 0.4)  # MiniLM cosine below which a sentence is not about the context, and where it fully is
DOUBT = (1.0, 3.0)  # the reader's doubt (nats) where a value found in the context starts to cost, and costs fully
FLAG = 2.0  # the reader's doubt (nats) from which a verdict counts such a value unsupported

_WORD = re.compile(r"\d+(?:[.,:]\d+)*|[A-Za-z][A-Za-z'\-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBERS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                                                     "seventy": "70", "eighty": "80", "ninety": "90"}
_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just let me more most my myself no nor not now of off on
once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves yes ok okay sure well here's it's that's
there's i'm you're they're we're isn't aren't wasn't weren't don't doesn't didn't can't won't may might must shall
one's upon within without via per etc e g i.e eg ie like also still yet even much many every either neither
answer question context according mentioned states said says based information text notes note provided following
""".split())


def stem(word: str) -> str:
    """A crude stem so that "opens" matches "open" and "measured" matches "measure"."""
    word = word.lower().removesuffix("'s")
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_CALENDAR = frozenset(stem(w) for w in (
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday am pm").split())


def _number(token: str) -> str:
    return token.replace(",", "")


@dataclass(frozen=True)
class Specific:
    """One checkable piece of an answer: its normalised form, what leaving it unsupported costs, and its text and
    place in its sentence."""

    key: str
    cost: float
    text: str = ""
    span: tuple[int, int] = (0, 0)

    @property
    def readable(self) -> bool:
        """A value the reader checks for being the context's value *here*: a number, month, weekday or am/pm."""
        return not self.key.startswith("pair:") and (self.key[0].isdigit() or self.key in _CALENDAR)


def _key(token: str) -> str:
    lower = token.lower()
    return _number(token) if token[0].isdigit() else _NUMBERS.get(lower) or stem(token)


def _pairs(tokens: list[str]) -> list[tuple[str, int]]:
    """A number beside a month, weekday or am/pm, as one key: "15 May" is not supported by "15 August ... May".
    (key, index of its first token) per pair."""
    keys = [_key(t) for t in tokens]
    pairs = []
    for i, (a, b) in enumerate(zip(keys, keys[1:])):
        if (a[0].isdigit() and b in _CALENDAR) or (b[0].isdigit() and a in _CALENDAR):
            pairs.append(("pair:" + "|".join(sorted((a, b))), i))
    return pairs


def specifics(sentence: str) -> list[Specific]:
    """Numbers, names and dated or timed numbers (cost STRONG) and content words (WEAK) of one sentence."""
    matches = list(_WORD.finditer(sentence))
    out = []
    for i, match in enumerate(matches):
        token, span = match.group(), match.span()
        lower = token.lower()
        if token[0].isdigit() or lower in _NUMBERS:
            out.append(Specific(_key(token), STRONG, token, span))
        elif (lower in _STOP and token != "May") or len(token) < 3:  # "May", the month, is no modal verb
            continue
        elif token[0].isupper() and (i > 0 or token.isupper()):
            out.append(Specific(stem(token), STRONG, token, span))  # a name or an acronym, not a sentence's first word
        else:
            out.append(Specific(stem(token), WEAK, token, span))
    for key, i in _pairs([m.group() for m in matches]):
        start, end = matches[i].start(), matches[i + 1].end()
        out.append(Specific(key, STRONG, sentence[start:end], (start, end)))
    return out


def vocabulary(text: str) -> frozenset[str]:
    """The normalised forms a context supports, dated and timed numbers among them."""
    keys = set()
    for sentence in sentences(text):
        tokens = _WORD.findall(sentence)
        keys.update(_key(t) for t in tokens)
        keys.update(key for key, _ in _pairs(tokens))
    return frozenset(keys)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def settled(response: str) -> str:
    """The part of a partial response whose last word is complete: drop a trailing word that may still grow."""
    if not response or response[-1].isspace() or response[-1] in ".,;:!?)]\"'":
        return response
    return response[: len(response) - len(re.split(r"\s", response)[-1])]


def has_facts(context: str) -> bool:
    """Whether a context has facts to check: a number or a name, or a dozen content words."""
    found = [s for sentence in sentences(context) for s in specifics(sentence)]
    return any(s.cost == STRONG for s in found) or len(found) >= 12


@dataclass(frozen=True)
class Verdict:
    """Whether an answer's specifics (numbers, names, dates, times) are supported by its prompt's context.

    `score` is the share of the answer's checked specifics that the context supports, from 0 to 1 (1 when it
    states none); `unsupported` lists the others as the answer writes them ("11:55 AM"): given nowhere in the
    context, or, for a number, month, weekday or am/pm, not the context's value at that place (the reader's doubt
    reaches `FLAG` nats). Sentences unrelated to the context are not checked."""

    grounded: bool
    score: float
    unsupported: tuple[str, ...]
    checked: int

    def to_dict(self) -> dict[str, Any]:
        return {"grounded": self.grounded, "score": round(self.score, 4), "unsupported": list(self.unsupported),
                "checked": self.checked}


class Groundedness(UsesEmbedder):
    """The groundedness term alone: `weight * (support - unsupported)` per response, 0.0 for every response when
    the prompt has no context. `PreferenceReward` adds it to its head's score; see the module docstring.
    `verdict` says whether one answer is grounded, and what in it is not.

    `reader` (`reader.Reader`, by default the shared one) checks that a number or date found in the context is the
    context's value at that place; `reader=False` leaves only the lookup.

    Example:
        >>> g = Groundedness()
        >>> p = Prompt.of([("system", "The pool opens at 7:15 AM every weekday."), ("user", "When does it open?")])
        >>> a, b = g.score(p, ["It opens at 7:15 AM every weekday.", "It opens at 9:30 AM on Mondays."])
        >>> a > b
        True
        >>> g.verdict(p, "It opens at 9:30 AM on Mondays.").unsupported
        ('9:30 AM', 'Mondays')
    """

    name = "groundedness"

    def __init__(self, weight: float = WEIGHT, embedder: Any = None, reader: Any = None):
        super().__init__(embedder)
        self.weight = float(weight)
        self._reader = reader
        # Darwin scores against one prompt every period: its context is read once (as ResponseEncoder does).
        self._context = lru_cache(maxsize=32)(self._read_context)
        self._has_facts = lru_cache(maxsize=32)(has_facts)
        self._sentences: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def reader(self) -> Any:
        """The reader, loaded on first use (None when turned off)."""
        if self._reader is None:
            from .reader import shared_reader

            self._reader = shared_reader()
        return self._reader or None

    def _read_context(self, context: str, request: str) -> tuple[np.ndarray, frozenset[str]]:
        """Chunk embeddings (one per context sentence) and the supported vocabulary."""
        return self.embedder.encode(sentences(context)).numpy(), vocabulary(context) | vocabulary(request)

    def _embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._sentences[t] for t in dict.fromkeys(texts) if t in self._sentences}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self.embedder.encode(missing).numpy()))
            with self._lock:
                self._sentences.update((t, found[t]) for t in missing)
                while len(self._sentences) > SENTENCE_CACHE:
                    self._sentences.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def applies(self, prompt: Prompt) -> bool:
        """Whether the prompt has context with facts to check: a number or a name, or a dozen content words.
        An instruction such as "Be brief." or "You are a helpful assistant." is no evidence, so it changes nothing."""
        context = prompt.context
        return bool(context.strip()) and self._has_facts(context)

    def _checked(self, prompt: Prompt, responses: Sequence[str]) -> list[list[tuple[float, float, list]]]:
        """Per response, per sentence: (gate, cosine, [(specific, cost, unsupported), ...]); [] when the check does
        not apply."""
        split = [sentences(r) for r in responses]
        texts = [s for ss in split for s in ss]
        if not texts or not self.applies(prompt):
            return [[] for _ in responses]
        chunks, supported = self._context(prompt.context, prompt.request)
        best = iter(dots(self._embed(texts), chunks).max(axis=1).tolist())
        low, high = GATE
        out = []
        for ss in split:
            rows = []
            for sentence in ss:
                cosine = next(best)
                gate = min(1.0, max(0.0, (cosine - low) / (high - low)))
                rows.append((gate, cosine, self._assess(prompt, sentence, supported) if gate else []))
            out.append(rows)
        return out

    def _assess(self, prompt: Prompt, sentence: str, supported: frozenset[str]) -> list[tuple[Specific, float, bool]]:
        """Each specific of a sentence with its cost and whether a verdict counts it unsupported."""
        found = specifics(sentence)
        read = [s for s in found if s.readable and s.key in supported]
        doubts = dict(zip(read, self.reader.doubts(prompt, sentence, [s.span for s in read]))) if (
            read and self.reader) else {}
        low, high = DOUBT
        out = []
        for s in found:
            if s.key not in supported:
                out.append((s, s.cost, s.cost == STRONG))
            elif s in doubts:
                out.append((s, s.cost * min(1.0, max(0.0, (doubts[s] - low) / (high - low))), doubts[s] >= FLAG))
            else:
                out.append((s, 0.0, False))
        return out

    def parts(self, prompt: Prompt, responses: Sequence[str]) -> list[tuple[float, float]]:
        """(support, unsupported) per response, before the weight; (0, 0) without facts in the context, or text."""
        parts = []
        for rows in self._checked(prompt, [settled(r) for r in responses]):
            support = sum(gate * cosine for gate, cosine, _ in rows) / max(1, len(rows))
            unsupported = sum(gate * cost for gate, _, found in rows for _, cost, _ in found)
            parts.append((support, unsupported))
        return parts

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return [self.weight * (support - unsupported) if support or unsupported else 0.0
                for support, unsupported in self.parts(prompt, responses)]

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, prompt, responses)

    def verdict(self, prompt: Prompt, response: str) -> Verdict | None:
        """Whether `response` is grounded in the prompt's context; None when the prompt has no facts to check."""
        if not self.applies(prompt):
            return None
        (rows,) = self._checked(prompt, [response])
        values: dict[tuple[int, str], bool] = {}  # each value as the answer writes it ("9 AM", not "9" and "9 AM")
        for n, (_, _, found) in enumerate(rows):
            strong = [(s, bad) for s, _, bad in found if s.cost == STRONG]
            for s, bad in strong:
                widest = max((w for w, _ in strong if _covers(w.span, s.span)), key=lambda w: w.span[1] - w.span[0])
                values[n, widest.text] = values.get((n, widest.text), False) or bad
        unsupported = tuple(dict.fromkeys(text for (_, text), bad in values.items() if bad))
        checked = len(values)
        score = 1.0 - sum(values.values()) / checked if checked else 1.0
        return Verdict(not unsupported, score, unsupported, checked)


def shared_groundedness() -> Groundedness:
    """One check per process, for verdicts when the reward has none of its own: its caches serve every search."""
    return _shared_groundedness()


@load_once
def _shared_groundedness() -> Groundedness:
    return Groundedness()


def _covers(outer: tuple[int, int], inner: tuple[int, int]) -> bool:
    return outer[0] <= inner[0] and inner[1] <= outer[1]


__all__ = ["Groundedness", "Verdict", "shared_groundedness", "WEIGHT", "specifics", "vocabulary", "settled", "stem"]
