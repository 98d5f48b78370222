"""An LLM as the reward: it rates each response to the original instruction from 1 to 10.

Where the server returns log-probabilities, the score is the expected value over the score tokens the judge
considered (smoother than one sampled digit, G-Eval style); otherwise it is the integer parsed from the reply. A
reply with no score in it is an error that quotes the reply: a judge that silently returned a default would steer
the search at random. The replies come back with the scores (`Reported.replies`), so the trace shows them.
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..config import Sampling
from ..errors import ConfigError, PolicyError, RewardError
from ..protocols import acomplete, complete
from ..prompt import Prompt
from ..protocols import Asking, Policy, Reported, Usage, component_name

DEFAULT_RUBRIC = (
    "Rate how well the response answers the instruction: helpful, correct, clear and to the point. Use a scale "
    "from 1 (useless) to 10 (excellent).\n\n"
    "Instruction: {instruction}\n\n"
    "Response: {response}\n\n"
    "Reply with the score only, a whole number from 1 to 10."
)
#: The start of the judge's answer, continued by policies that can continue one: it leaves only a number to say.
DEFAULT_PREFIX = "Score:"

_OUT_OF = re.compile(r"(?<![\d.])(10|[1-9])\s*(?:/|out of)\s*10(?!\d)", re.IGNORECASE)  # "7/10", "7 out of 10"
_LABELLED = re.compile(r"(?:score|rating|grade)\W{0,6}(10|[1-9])(?!\d)(?![.)]\s*[A-Za-z])", re.IGNORECASE)
_LEADING = re.compile(r"^\W{0,4}(10|[1-9])(?!\d)(?![.)]\s*[A-Za-z])")  # "8", "**8**", "8/10"; not "1. Use ..."
_ANY = re.compile(r"(?<![\d.])(10|[1-9])(?![\d])(?![.)]\s*[A-Za-z])")
_GREEDY = Sampling(temperature=0)


class JudgeReward:
    """LLM-as-judge over a policy: best over an `OpenAIPolicy` (log-probabilities, a "Score:" prefix), or any policy.

    Example:
        >>> from darwin_chains.policies.openai import OpenAIPolicy
        >>> judge = JudgeReward(OpenAIPolicy.from_url("gpt-4o-mini"))     # key from OPENAI_API_KEY
        >>> judge.score(Prompt.of("Name a colour."), ["Blue.", "I like trains."])
        [9.0, 1.0]

    Args:
        judge: the model that judges: an `OpenAIPolicy` or any Policy.
        rubric: the question asked per response, a format string with `{instruction}` and `{response}`; the
            instruction is the ORIGINAL one (with any earlier turns and context), never a mutant.
        prefix: the start of the judge's answer, continued where the policy can continue a response.
        max_concurrency: responses judged at once.
        top_logprobs: alternatives per token to ask for (0: parse the text only).
    """

    def __init__(self, judge: Policy, *, rubric: str = DEFAULT_RUBRIC, prefix: str = DEFAULT_PREFIX,
                 max_tokens: int = 6, max_concurrency: int = 4, top_logprobs: int = 10, name: str | None = None):
        try:
            rubric.format(instruction="", response="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"a judge rubric may only use {{instruction}} and {{response}}; got an error: {exc}") from exc
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.judge, self.rubric, self.prefix = judge, rubric, prefix
        self.max_tokens, self.max_concurrency, self.top_logprobs = max_tokens, max_concurrency, top_logprobs
        self.name = name or f"judge:{component_name(judge)}"

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        with ThreadPoolExecutor(min(self.max_concurrency, max(1, len(responses)))) as pool:
            judged = list(pool.map(lambda r: self._judge(prompt, r), responses))
        return self._reported(judged)

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        limit = asyncio.Semaphore(self.max_concurrency)
        prefix = await asyncio.to_thread(self._prefix)  # a remote judge may ask its server first: off the loop

        async def one(response: str) -> tuple[float, Usage, str]:
            async with limit:
                return await self._ajudge(prompt, response, prefix)

        return self._reported(await asyncio.gather(*(one(r) for r in responses)))

    # -- one response --------------------------------------------------------------------------------------------

    def question(self, prompt: Prompt, response: str) -> list[dict[str, str]]:
        """The judge's conversation for one response."""
        return [{"role": "user", "content": self.rubric.format(instruction=_original(prompt), response=response)}]

    def _judge(self, prompt: Prompt, response: str) -> tuple[float, Usage, str]:
        messages = self.question(prompt, response)
        try:
            if isinstance(self.judge, Asking):
                reply, usage = self.judge.ask(messages, prefix=self._prefix(), max_tokens=self.max_tokens,
                                              top_logprobs=self.top_logprobs)
                return self.read(reply.text, reply.top_logprobs, self._prefix()), usage, reply.text
            text, usage = complete(self.judge, messages, self.max_tokens, _GREEDY)
        except PolicyError as exc:
            raise RewardError(f"{self.name}: {exc}") from exc
        return self.read(text), usage, text

    async def _ajudge(self, prompt: Prompt, response: str, prefix: str) -> tuple[float, Usage, str]:
        messages = self.question(prompt, response)
        try:
            if isinstance(self.judge, Asking):
                reply, usage = await self.judge.aask(messages, prefix=prefix, max_tokens=self.max_tokens,
                                                     top_logprobs=self.top_logprobs)
                return self.read(reply.text, reply.top_logprobs, prefix), usage, reply.text
            text, usage = await acomplete(self.judge, messages, self.max_tokens, _GREEDY)
        except PolicyError as exc:
            raise RewardError(f"{self.name}: {exc}") from exc
        return self.read(text), usage, text

    def _prefix(self) -> str:
        try:
            continues = self.judge.supports_continuation  # a remote judge may ask its server on first use
        except PolicyError as exc:
            raise RewardError(f"{self.name}: {exc}") from exc
        return self.prefix if continues else ""

    def read(self, text: str, top_logprobs: list[dict[str, float]] | None = None, prefix: str = "") -> float:
        """The score in a reply (which continued `prefix`): the expected value over the score tokens' probabilities
        where given, else the number parsed from the text."""
        expected = expected_score(top_logprobs) if top_logprobs else None
        return expected if expected is not None else parse_score(text, self.name, prefix)

    @staticmethod
    def _reported(judged: list[tuple[float, Usage, str]]) -> Reported:
        usage = Usage()
        for _, u, _ in judged:
            usage += u
        return Reported([s for s, _, _ in judged], usage, replies=[text for _, _, text in judged])


def parse_score(text: str, judge: str = "judge", prefix: str = "") -> float:
    """The 1-10 score in a judge's reply ("8", "Score: 8/10", "**8**"); RewardError, quoting it, when there is none.

    A list marker ("1. Use a clear subject line") is not a score: a judge that answers the instruction instead of
    rating it must fail loudly rather than give every response a 1.
    """
    for pattern, source in ((_OUT_OF, text), (_LABELLED, prefix + text), (_LEADING, text)):
        match = pattern.search(source)
        if match:
            return float(match.group(1))
    found = {m.group(1) for m in _ANY.finditer(text)}
    if len(found) == 1:
        return float(found.pop())
    raise RewardError(f"{judge} gave no score from 1 to 10; its reply began {text.strip()[:80]!r}. Use a stronger "
                      "judge model, or a rubric that it follows")


def expected_score(top_logprobs: list[dict[str, float]]) -> float | None:
    """Probability-weighted mean over the 1-10 tokens at the first position where the judge considered any."""
    for alternatives in top_logprobs:
        mass: dict[int, float] = {}
        for token, logprob in alternatives.items():
            token = token.strip()
            if token.isdigit() and 1 <= int(token) <= 10:
                mass[int(token)] = mass.get(int(token), 0.0) + math.exp(logprob)
        if mass:
            total = sum(mass.values())
            return sum(score * p for score, p in mass.items()) / total
    return None


def _original(prompt: Prompt) -> str:
    """The original instruction, with the conversation before it (system prompt, context, earlier turns)."""
    if len(prompt.messages) == 1:
        return prompt.instruction
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt.messages)
