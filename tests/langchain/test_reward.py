"""A LangChain Runnable as Darwin's reward: what it receives, what it may return, and how it is called."""
from __future__ import annotations

import pytest
from darwin_chains import Prompt, RewardError
from darwin_chains.testing.contracts import RewardContract
from langchain_core.messages import AIMessage
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import RunnableLambda

from langchain_darwin import DarwinAlign, RunnableReward

from tests.support.searches import FAST

PROMPT = Prompt.of([{"role": "system", "content": "ctx"}, {"role": "user", "content": "Why do cats purr?"}])


@pytest.mark.parametrize("output, expected", [
    (3, 3.0), (0.25, 0.25), ("Score: 7/10", 7.0), ("-1.5e1 points", -15.0), (AIMessage("I give it 8."), 8.0),
    (True, 1.0),
])
def test_numbers_are_read_from_what_the_runnable_returns(output, expected):
    assert RunnableReward(RunnableLambda(lambda x: output)).score(PROMPT, ["a"]) == [expected]


@pytest.mark.parametrize("output", [{"score": 1}, "no number here", None, ["1"]])
def test_anything_else_is_an_error_naming_the_runnable(output):
    reward = RunnableReward(RunnableLambda(lambda x: output, name="my_judge"))
    with pytest.raises(RewardError, match="my_judge"):
        reward.score(PROMPT, ["a"])


async def test_it_sees_the_original_instruction_and_takes_the_async_path_when_awaited():
    seen = []

    def judge(x: dict) -> float:
        seen.append(("sync", x))
        return len(x["response"])

    async def ajudge(x: dict) -> float:
        seen.append(("async", x))
        return len(x["response"])

    reward = RunnableReward(RunnableLambda(judge, afunc=ajudge))
    assert reward.score(PROMPT, ["ab", "abc"]) == [2.0, 3.0]
    assert await reward.ascore(PROMPT, ["a"]) == [1.0]
    assert sorted(seen, key=lambda s: (s[0], s[1]["response"])) == [
        ("async", {"instruction": "Why do cats purr?", "response": "a", "context": "ctx"}),
        ("sync", {"instruction": "Why do cats purr?", "response": "ab", "context": "ctx"}),
        ("sync", {"instruction": "Why do cats purr?", "response": "abc", "context": "ctx"})]


def test_a_prompt_and_parser_chain_as_the_reward(fake_policy):
    # A real LCEL chain: template -> text -> a scoring step, as a judge chain would be, without a judge model.
    judge = (PromptTemplate.from_template("Q: {instruction}\nA: {response}") | RunnableLambda(lambda p: p.to_string())
             | RunnableLambda(lambda text: f"score {text.split('A:')[1].split().count('cat')}"))
    message = DarwinAlign(policy=fake_policy, reward=judge, **FAST).invoke("Tell me about the cat")
    assert message.response_metadata["reward"] == message.content.split().count("cat")
    assert message.response_metadata["darwin"]["reward_calls"] > 0


class TestRunnableRewardContract(RewardContract):
    """An LCEL chain as the reward: a template, its text, and a count of the response's words."""

    @pytest.fixture
    def reward(self):
        return RunnableReward(PromptTemplate.from_template("Q: {instruction}\nA: {response}")
                              | RunnableLambda(lambda p: float(len(p.to_string().split("A:", 1)[1].split()))))
