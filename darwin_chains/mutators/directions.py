"""What a text directs about its answer (length, format, register), read from a small table of cue phrases.

A mutation must keep the prompt's own directions: a variant that adds "Answer step by step." to a prompt that
says "Be brief." makes the policy write the long answer the user did not want. The template mutator drops
templates whose directions the prompt rules out, and the LLM mutator rejects rewrites that add one. Both read
directions here, so there is one table.

This is a short list of phrases, not a parser. It reads the whole prompt, retrieved text included: a cue that
is only part of a document ("a brief outage") counts too. Such a false cue only drops a template or a rewrite;
it never adds a direction to an answer.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

_NUM = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty|fifty)"

# (pattern, directions), tried in order on lower-cased text. A match claims its span, so a later, more general cue
# does not read it again: "do not use a list" is no-list, never list.
CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # length
    (r"\b(?:in |as |with )?(?:one|a single|1)[- ]word\b", ("exact", "shorter")),
    (r"\b(?:in|as|with) (?:just |only )?(?:one|a single|1) (?:short )?(?:sentence|line)\b|\bone[- ]sentence\b"
     r"|\bsingle sentence\b|\bone-liner\b", ("shorter", "no-list")),
    (rf"\b(?:at most|no more than|not more than|up to|under|fewer than|less than|maximum(?: of)?|max|within|in) "
     rf"{_NUM} (?:words|sentences|lines)\b|\b{_NUM} (?:words|sentences|lines) (?:or (?:fewer|less)|max(?:imum)?)\b",
     ("shorter",)),
    (r"\b(?:brief(?:ly)?|concise(?:ly)?|succinct(?:ly)?|terse(?:ly)?|to the point)\b"
     r"|\bshort (?:answer|reply|response)\b|\bkeep (?:it|the answer|your answer|the reply|your reply) short\b"
     r"|\bbe short\b", ("shorter",)),
    (r"\b(?:detailed|in detail|thorough(?:ly)?|comprehensive(?:ly)?|in[- ]depth|at length|elaborate)\b"
     r"|\bexhaustive(?:ly)?\b|\blong(?:er)? (?:answer|reply|response)\b|\bexplain (?:it )?fully\b", ("longer",)),
    # format and structure
    (r"(?:\b(?:no|not|never|without|avoid)\b|n't)[^.\n]{0,20}?\b(?:lists?|bullets?|bullet points|numbered)\b"
     r"|\bin prose\b|\b(?:one|a single) paragraph\b", ("no-list",)),
    (r"\bjson\b|\b(?:only|just) (?:the |a |an |one )?(?:number|name|date|year|word|value|letter|answer|code)s?\b"
     r"|\byes or no\b|\bnothing else\b|\b(?:no|without(?: any)?) (?:explanation|commentary|preamble)\b"
     r"|\bdo(?: not|n't) explain\b", ("exact",)),
    (r"\bstep[- ]by[- ]step\b|\b(?:in|as|numbered) steps\b|\bstep 1\b", ("steps",)),
    (r"\b(?:a|short|bulleted|numbered|bullet) list\b|\bbullet(?: point)?s\b|\blist (?:the|them|each|all)\b|^list\b",
     ("list",)),
    (r"\b(?:an?|one|concrete|some) examples?\b|\bfor (?:instance|example)\b", ("example",)),
    # register
    (r"\bsimpl[ey]\b|\bplain (?:language|english|words)\b|\b(?:beginner|newcomer|novice|layperson)s?\b|\bfor a child\b"
     r"|\bnew to\b|\blike i'?m five\b", ("simpler",)),
    (r"\btechnical(?:ly)?\b|\bfor (?:an? )?(?:expert|specialist)s?\b|\bprecise terminology\b", ("expert",)),
    (r"\bformal(?:ly)?\b|\bprofessional tone\b", ("formal",)),
    (r"\b(?:casual(?:ly)?|informal(?:ly)?|conversational|chatty)\b", ("casual",)),
)

# A direction the prompt gives -> the directions a variant may not add beside it.
RULES_OUT: dict[str, frozenset[str]] = {
    "shorter": frozenset({"longer", "steps", "list", "example", "simpler"}),  # nothing that lengthens the answer
    "exact": frozenset({"longer", "steps", "list", "example", "simpler"}),  # nothing beside the asked-for format
    "no-list": frozenset({"list", "steps"}),
    "longer": frozenset({"shorter"}),
    "steps": frozenset({"no-list"}),
    "list": frozenset({"no-list"}),
    "simpler": frozenset({"expert"}),
    "expert": frozenset({"simpler"}),
    "formal": frozenset({"casual"}),
    "casual": frozenset({"formal"}),
}

# How a rejection names a direction.
WORDS: dict[str, str] = {
    "shorter": "a short answer", "longer": "a long, detailed answer", "steps": "steps", "list": "a list",
    "no-list": "no list", "exact": "only a set format (JSON, one word, just the answer)", "example": "an example",
    "simpler": "a simple explanation", "expert": "a technical register", "formal": "a formal register",
    "casual": "a casual register",
}

_COMPILED = tuple((re.compile(pattern, re.M), tags) for pattern, tags in CUES)


def directions(text: str) -> frozenset[str]:
    """The directions the text gives its answer, by the cue table (empty when it gives none).

    Example:
        >>> sorted(directions("Answer in one sentence. Do not use a list."))
        ['no-list', 'shorter']
    """
    text, found = text.lower(), set()
    for pattern, tags in _COMPILED:
        text, hits = pattern.subn(" | ", text)
        if hits:
            found.update(tags)
    return frozenset(found)


def contradiction(added: Iterable[str], given: Iterable[str]) -> str | None:
    """Why adding the `added` directions to a prompt that gives the `given` ones contradicts it, or None.

    Example:
        >>> contradiction({"steps"}, directions("Be brief."))
        'asks for steps where the prompt asks for a short answer'
    """
    given = sorted(given)
    for a in sorted(added):
        for g in given:
            if a in RULES_OUT.get(g, ()):
                return f"asks for {WORDS[a]} where the prompt asks for {WORDS[g]}"
    return None
