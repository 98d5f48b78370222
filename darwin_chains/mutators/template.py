"""The template mutator: fixed, intent-preserving augmentations that need no model.

They ask for steps, concision, examples or structure and keep the instruction's text intact. It is the default
for small policies, which cannot rewrite reliably.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import ConfigError

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
