"""The template mutator: fixed, intent-preserving augmentations that need no model.

They ask for steps, concision, examples or structure and keep the instruction's text intact. It is the default
for small policies, which cannot rewrite reliably. A template never contradicts the prompt: one whose direction
the instruction or its context rules out ("Answer step by step." beside "Be brief.") is left out
(`directions.py`).
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .directions import contradiction, directions


@dataclass(frozen=True)
class Template:
    """A rewrite around the placeholder `{instruction}`, and what it directs about the answer (see directions.py)."""

    text: str
    directs: tuple[str, ...] = ()

    @property
    def added(self) -> list[str]:
        """The text the template puts around the instruction."""
        return [part.strip() for part in self.text.split("{instruction}") if part.strip()]


TEMPLATES: tuple[Template, ...] = (
    Template("{instruction}\n\nAnswer step by step.", ("steps",)),
    Template("{instruction}\n\nBe concise and specific.", ("shorter",)),
    Template("{instruction}\n\nInclude a concrete example.", ("example",)),
    Template("{instruction}\n\nOrganise the answer clearly, with a short list where it helps.", ("list",)),
    Template("{instruction}\n\nGive a thorough, detailed answer.", ("longer",)),
    Template("{instruction}\n\nExplain it simply, for a reader new to the topic.", ("simpler",)),
    Template("{instruction}\n\nMake sure the answer is accurate and addresses exactly what is asked."),
    Template("Please answer the following helpfully and accurately.\n\n{instruction}"),
)


class TemplateMutator:
    """Fixed, intent-preserving rewrites; a seeded draw decides which ones a cycle gets.

    Templates whose direction contradicts one the prompt gives (in the instruction, or in its context: a system
    message, the text around a RAG question) are left out; the rest are used each once before any repeats. When
    every template contradicts the prompt, the variants are the instruction itself. A template given as plain
    text directs what the cue table reads in it. `respect_directions=False` uses every template whatever the
    prompt says (the behaviour before the check, kept for measurements).

    Example:
        >>> mutator = TemplateMutator()
        >>> [v.split("\\n\\n")[-1] for v in mutator.mutate("Name a prime.", 2, seed=1)]
        ['Include a concrete example.', 'Give a thorough, detailed answer.']
        >>> [t.directs for t in mutator.fitting("Name a prime.", context="Be brief.")]  # concision, accuracy, prefix
        [('shorter',), (), ()]
    """

    name = "template"
    supports_context = True  # mutate takes context=: the prompt's text around the request
    immediate = True  # no model work: the seed sample starts with the beams instead of decoding while it writes

    def __init__(self, templates: Sequence[str | Template] = TEMPLATES, *, respect_directions: bool = True):
        self.templates = tuple(t if isinstance(t, Template) else Template(t, _read(t)) for t in templates)
        if not self.templates or any("{instruction}" not in t.text for t in self.templates):
            raise ConfigError("every template must contain the placeholder {instruction}")
        self.respect_directions = respect_directions

    def mutate(self, instruction: str, n: int, seed: int, *, context: str = "") -> list[str]:
        rng = random.Random(seed)
        fitting = self.fitting(instruction, context) or [Template("{instruction}")]
        # A later cycle mutates an archived variant: adding the same sentence twice would waste a beam.
        fresh = [t for t in fitting if not _applied(t, instruction)] or fitting
        chosen: list[Template] = []
        while len(chosen) < n:  # each template once before any repeats
            chosen += rng.sample(fresh, min(n - len(chosen), len(fresh)))
        return [t.text.replace("{instruction}", instruction) for t in chosen]

    def fitting(self, instruction: str, context: str = "") -> list[Template]:
        """The templates that add no direction the instruction or its context rules out."""
        if not self.respect_directions:
            return list(self.templates)
        given = directions(f"{context}\n\n{instruction}")
        return [t for t in self.templates if contradiction(t.directs, given) is None]


def _read(text: str) -> tuple[str, ...]:
    """What a plain-text template directs, by the cue table."""
    return tuple(sorted(directions(" ".join(Template(text).added))))


def _applied(template: Template, instruction: str) -> bool:
    """Whether the instruction already carries everything the template adds."""
    return bool(template.added) and all(part in instruction for part in template.added)
