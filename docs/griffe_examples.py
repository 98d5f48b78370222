"""A Griffe extension for the API pages: docstrings written for `help()` read as Markdown without surprises.

The project's docstrings are plain text. Read as Markdown, their doctest lines would run together into one
paragraph and `response_metadata["darwin"]["trace"]` would read as a link to a page named `"trace"`. So doctest
lines become fenced code, and subscripts in prose become code spans; the docstrings themselves stay as they are.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_SUBSCRIPT = re.compile(r"[\w.()]+(?:\[[^\]\s]*\])+")


def _code_spans(line: str) -> str:
    """`x["a"]` in prose, outside backticks, becomes a code span."""
    out, last = [], 0
    for match in _SUBSCRIPT.finditer(line):
        if line.count("`", 0, match.start()) % 2 == 0:
            out += [line[last:match.start()], f"`{match.group()}`"]
            last = match.end()
    return "".join(out) + line[last:]


def markdown(docstring: str) -> str:
    """Fence each run of doctest lines (a `>>>` line up to the next blank line) at its own indentation."""
    lines, out, i, fenced = docstring.splitlines(), [], 0, False
    while i < len(lines):
        stripped = lines[i].lstrip()
        if stripped.startswith("```"):
            fenced = not fenced
        if fenced or stripped.startswith("```") or not stripped.startswith(">>>"):
            out.append(lines[i] if fenced or stripped.startswith("```") else _code_spans(lines[i]))
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(stripped)]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestExamples(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
