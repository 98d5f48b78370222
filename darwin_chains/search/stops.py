"""Stop sequences: where an answer ends, and how much of a partial response is safe to show.

Beams end at a stop sequence in the core (`requests.Extend`), for every policy; streaming must not show text that
a stop sequence, still being decoded, may yet cut off.
"""
from __future__ import annotations

from collections.abc import Sequence


def cut(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to the first stop sequence."""
    ends = [i for i in (text.find(s) for s in stop or () if s) if i >= 0]
    return text[: min(ends)] if ends else text


def hold_back(text: str, stop: Sequence[str] | None) -> str:
    """`text`, cut, less any tail that may be the start of a stop sequence: the part no later token can cut."""
    stop = [s for s in stop or () if s]
    text = cut(text, stop)
    for start in range(max(0, len(text) - max(map(len, stop), default=0)), len(text)):
        if any(s.startswith(text[start:]) for s in stop):
            return text[:start]
    return text
