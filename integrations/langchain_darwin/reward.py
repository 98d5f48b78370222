"""A LangChain Runnable as a Darwin reward: a judge chain, a classifier, any LCEL pipeline that returns a score."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from darwin_chains import Prompt, RewardError
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class RunnableReward:
    """Scores responses with a Runnable that takes `{"instruction", "response", "context"}` and returns a number.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> reward = RunnableReward(RunnableLambda(lambda x: len(set(x["response"].split()))))
        >>> reward.score(Prompt.of("Name two colours."), ["red and blue", "red red"])
        [3.0, 1.0]

    `instruction` is the original final user message: Darwin never scores against a mutated instruction;
    `context` is the rest of the prompt (`Prompt.context`: system messages, earlier turns, retrieved text). The
    responses of one step go out as one `batch` (`abatch` on the async path). The output may be a float or int,
    or text or a message holding a number (a judge's "Score: 7"); anything else is a RewardError naming the
    runnable. Its runs are child runs of the search's run, with the caller's callbacks, tags and metadata.
    """

    def __init__(self, runnable: Runnable, *, name: str | None = None, max_concurrency: int | None = None):
        self.runnable = runnable
        self.name = name or runnable.get_name()
        self.max_concurrency = max_concurrency

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        outputs = self.runnable.batch(self._inputs(prompt, responses), config=self._config())
        return [self._number(o) for o in outputs]

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        outputs = await self.runnable.abatch(self._inputs(prompt, responses), config=self._config())
        return [self._number(o) for o in outputs]

    @staticmethod
    def _inputs(prompt: Prompt, responses: Sequence[str]) -> list[dict[str, str]]:
        return [{"instruction": prompt.instruction, "response": r, "context": prompt.context} for r in responses]

    def _config(self) -> dict[str, Any]:
        # Callbacks, tags and metadata come from the caller's context, where LangChain keeps the running config.
        return {"max_concurrency": self.max_concurrency} if self.max_concurrency else {}

    def _number(self, output: Any) -> float:
        if isinstance(output, BaseMessage):
            output = output.text
        if isinstance(output, (int, float)):
            return float(output)
        if isinstance(output, str) and (match := _NUMBER.search(output)):
            return float(match.group())
        raise RewardError(f"reward runnable {self.name!r} returned {output!r:.120}; it must return a number, or "
                          "text holding one (end the chain with a parser that extracts the score)")
