"""FakePolicy and KeywordReward: a policy that writes random words, and a reward whose optimum is obvious."""
from __future__ import annotations

import random
from collections.abc import Sequence

from ..config import Sampling
from ..errors import InputError
from ..prompt import Prompt
from ..protocols import Beam, Usage

WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "slept", "well", "today")


class FakePolicy:
    """A policy without a model: a "token" is a word, drawn with a seeded RNG.

    With probability `echo`, a word comes from the beam's own (mutated) request, so instructions matter. Each
    token ends the response with probability `stop`. `supports_continuation=False` makes it answer whole responses,
    like a chat API that cannot continue a prefix.

    Example:
        >>> policy = FakePolicy()
        >>> beams = policy.start([Prompt.of("say cat")], max_new_tokens=8)
        >>> _ = policy.extend(beams, 4, Sampling(), seed=0); beams[0].tokens
        4
    """

    def __init__(self, words: Sequence[str] = WORDS, *, echo: float = 0.3, stop: float = 0.0,
                 supports_continuation: bool = True, max_context: int | None = 4096, name: str = "fake"):
        self.words, self.echo, self.stop = tuple(words), echo, stop
        self.supports_continuation, self.max_context, self.name = supports_continuation, max_context, name
        self.calls: list[tuple[int, int]] = []  # (beams, max_new_tokens) per extend call

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        beams = []
        for prompt in prompts:
            length = sum(len(m["content"].split()) for m in prompt.messages)
            if self.max_context is not None and length + max_new_tokens > self.max_context:
                raise InputError(f"prompt has {length} tokens and up to {max_new_tokens} new tokens were asked for, "
                                 f"but {self.name}'s context window is {self.max_context} tokens")
            beams.append(Beam(prompt=prompt, state=[]))
        return beams

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        rng = random.Random(seed)
        live = [b for b in beams if not b.finished]
        self.calls.append((len(live), max_new_tokens))
        usage = Usage(requests=1)
        for beam in live:
            own = beam.prompt.request.split() or list(self.words)
            for _ in range(max_new_tokens):
                usage.output_tokens += 1
                if rng.random() < self.stop:
                    beam.finished = True
                    break
                beam.state.append(rng.choice(own) if rng.random() < self.echo else rng.choice(self.words))
            beam.tokens = len(beam.state)
            beam.response = " ".join(beam.state)
            if not self.supports_continuation:
                beam.finished = True
        return usage

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, list(donor.state))


class KeywordReward:
    """Counts occurrences of keywords per word of response: a reward whose optimum is obvious.

    It records every (instruction, response) it scores in `seen`, so tests can check what it was asked.
    """

    name = "keyword"

    def __init__(self, keywords: Sequence[str] = ("cat",)):
        self.keywords = set(keywords)
        self.seen: list[tuple[str, str]] = []

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        out = []
        for r in responses:
            self.seen.append((prompt.instruction, r))
            words = r.split()
            out.append(sum(w in self.keywords for w in words) / max(1, len(words)))
        return out
