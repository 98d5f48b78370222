"""ScriptedPolicy: a policy that writes exactly what a test enqueued, and records every call made to it.

Where FakePolicy draws random words, this one makes a test's expectations exact: which beam writes what, when a
beam finishes, and in what order the search started, extended and replaced beams.
"""
from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Sampling
from ..errors import InputError
from ..prompt import Prompt
from ..protocols import Beam, Usage


@dataclass
class Script:
    """A beam's state: the tokens it will write and how many it has written. Adopting copies both."""

    tokens: tuple[str, ...]
    written: int = 0


def tokens_of(response: str | Sequence[str]) -> tuple[str, ...]:
    """A string splits into words that keep their leading space, so the tokens join back to the response."""
    if isinstance(response, str):
        return tuple(re.findall(r"\s*\S+", response))
    return tuple(response)


class ScriptedPolicy:
    """Each new beam takes the next enqueued response and writes it a token at a time; it finishes at its end.

    Without `supports_continuation` a beam finishes after one call, like a chat API that cannot continue.

    `history` holds one tuple per call, in order: ("start", requests, max_new_tokens), ("extend", requests of the
    unfinished beams, max_new_tokens, seed) and ("adopt", beam's request, donor's response). When the queue is
    empty a new beam takes `default`, or `start` raises LookupError if there is none. Nothing is random.

    Example:
        >>> policy = ScriptedPolicy().enqueue("a cat sat", "no")
        >>> beams = policy.start([Prompt.of("x"), Prompt.of("y")], max_new_tokens=8)
        >>> _ = policy.extend(beams, 2, Sampling(), seed=0)
        >>> [(b.response, b.finished) for b in beams]
        [('a cat', False), ('no', True)]
    """

    def __init__(self, responses: Sequence[str | Sequence[str]] = (), *, default: str | Sequence[str] | None = None,
                 supports_continuation: bool = True, max_context: int | None = 4096, name: str = "scripted"):
        self.queue: deque[tuple[str, ...]] = deque(tokens_of(r) for r in responses)
        self.default = None if default is None else tokens_of(default)
        self.supports_continuation, self.max_context, self.name = supports_continuation, max_context, name
        self.history: list[tuple] = []

    def enqueue(self, *responses: str | Sequence[str]) -> ScriptedPolicy:
        """Responses for the next beams, in the order `start` will make them."""
        self.queue.extend(tokens_of(r) for r in responses)
        return self

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        self.history.append(("start", tuple(p.request for p in prompts), max_new_tokens))
        for prompt in prompts:
            length = sum(len(m["content"].split()) for m in prompt.messages)
            if self.max_context is not None and length + max_new_tokens > self.max_context:
                raise InputError(f"prompt has {length} tokens and up to {max_new_tokens} new tokens were asked for, "
                                 f"but {self.name}'s context window is {self.max_context} tokens")
        return [Beam(prompt=p, state=Script(self._next())) for p in prompts]

    def _next(self) -> tuple[str, ...]:
        if self.queue:
            return self.queue.popleft()
        if self.default is None:
            raise LookupError("ScriptedPolicy has no response left for a new beam: enqueue() more, or pass default=")
        return self.default

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        live = [b for b in beams if not b.finished]
        self.history.append(("extend", tuple(b.prompt.request for b in live), max_new_tokens, seed))
        usage = Usage(requests=1)
        for beam in live:
            script = beam.state
            step = min(len(script.tokens) - script.written, max_new_tokens)
            script.written += step
            usage.output_tokens += step
            beam.tokens = script.written
            beam.response = "".join(script.tokens[: script.written])
            beam.finished = script.written == len(script.tokens) or not self.supports_continuation
        return usage

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        self.history.append(("adopt", beam.prompt.request, donor.response))
        script = Script(donor.state.tokens, donor.state.written)
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, script)

    def calls(self, kind: str) -> list[tuple]:
        """The recorded calls of one kind ("start", "extend" or "adopt")."""
        return [c for c in self.history if c[0] == kind]
