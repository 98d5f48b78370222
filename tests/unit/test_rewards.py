"""Rewards without a packaged model: a tiny sequence classifier saved in the test, weighted sums, the distinct-trigram
reward, a plain callable, and the LLM judge over a scripted chat policy."""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains import Prompt, WeightedReward, as_reward
from darwin_chains.rewards import DistinctReward
from darwin_chains.rewards.hf import HFRewardModel
from darwin_chains.rewards.judge import JudgeReward
from darwin_chains.testing.contracts import RewardContract

from tests.support.searches import ScriptedChatPolicy

PROMPT = Prompt.of("Give three tips for writing a clear email.")


@pytest.fixture(scope="module")
def reward_model(tiny_reward_model):
    return HFRewardModel.from_pretrained(tiny_reward_model, device="cpu")


def test_batch_scores_equal_one_at_a_time(reward_model):
    responses = ["Use a clear subject line.", "Keep it short and proofread before sending, always.", "", "Paris"]
    batched = reward_model.score(PROMPT, responses)
    alone = [reward_model.score(PROMPT, [r])[0] for r in responses]
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(s, 6) for s in batched)) > 1  # it discriminates


def test_scores_depend_on_the_instruction(reward_model):
    other = Prompt.of("Write a haiku about autumn.")
    assert reward_model.score(PROMPT, ["Use a clear subject line."]) != reward_model.score(other, [
        "Use a clear subject line."])


def test_truncation_keeps_the_end_of_a_long_response(tiny_reward_model):
    reward = HFRewardModel.from_pretrained(tiny_reward_model, device="cpu", max_length=64)
    middle_a, middle_b = "mat " * 20 + "cat " * 200, "Paris " * 20 + "cat " * 200  # differ only early on
    tail_a, tail_b = " Keep it short.", " Paris is the capital."
    ids = reward.encode(PROMPT, middle_a + tail_a)
    assert len(ids) == 64
    assert ids[-8:] == reward.encode(PROMPT, "x" + tail_a)[-8:]  # the end survives the cut
    # What the cut removes cannot matter; what it keeps (the end) does.
    assert reward.score(PROMPT, [middle_a + tail_a]) == pytest.approx(reward.score(PROMPT, [middle_b + tail_a]))
    assert reward.score(PROMPT, [middle_a + tail_a]) != pytest.approx(reward.score(PROMPT, [middle_a + tail_b]))


def test_pad_equal_to_the_final_token_is_scored_correctly(tiny_reward_model):
    """When pad == eos and texts end with it, batching must not pool at the wrong token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reward_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model)
    model.config.pad_token_id = tokenizer.convert_tokens_to_ids("\u010a")  # the newline ending every turn
    reward = HFRewardModel(model, tokenizer)
    responses = ["Use a clear subject line.", "Keep it short."]
    assert reward.score(PROMPT, responses) == pytest.approx([reward.score(PROMPT, [r])[0] for r in responses])


def test_weighted_reward_is_the_weighted_sum():
    length = as_reward(lambda instruction, response: float(len(response)))
    words = as_reward(lambda instruction, response: float(len(response.split())))
    combined = WeightedReward([(length, 0.5), (words, 2.0)])
    assert combined.score(PROMPT, ["a bc", "def"]) == [0.5 * 4 + 2 * 2, 0.5 * 3 + 2 * 1]
    assert asyncio.run(combined.ascore(PROMPT, ["a bc"])) == [6.0]
    assert "0.5*" in combined.name


class TestHFRewardModelContract(RewardContract):
    @pytest.fixture
    def reward(self, reward_model):
        return reward_model


class TestWeightedRewardContract(RewardContract):
    @pytest.fixture
    def reward(self, reward_model):
        return WeightedReward([(reward_model, 0.5), (as_reward(lambda instruction, response: len(response) / 10), 1.0)])


class TestDistinctRewardContract(RewardContract):
    @pytest.fixture
    def reward(self):
        return DistinctReward()


class TestCallableRewardContract(RewardContract):
    """A plain function as the reward (`as_reward` wraps it in a CallableReward)."""

    @pytest.fixture
    def reward(self):
        return as_reward(lambda instruction, response: float(len(set(response.split()) & set(instruction.split()))))


def _judge_reply(prompt: Prompt) -> str:
    """A judge that reads the response it is asked about: one point per word, from 1 to 10."""
    response = prompt.instruction.split("Response: ", 1)[1].split("\n\nReply with the score", 1)[0]
    return str(min(10, 1 + len(response.split())))


class TestJudgeRewardContract(RewardContract):
    """The LLM judge over a scripted chat policy; tests/integration/openai_policy/test_judge.py judges with a real
    server."""

    @pytest.fixture
    def reward(self):
        return JudgeReward(ScriptedChatPolicy(_judge_reply))


def test_concurrent_calls_are_scored_in_one_pass_with_their_own_scores(reward_model):
    import threading

    from tests.support.coalescing import queue_behind

    texts = [["Use a clear subject line."], ["Keep it short.", "Proofread before sending."], ["Paris"]]
    alone = [reward_model.score(PROMPT, t) for t in texts]
    before, results = reward_model.passes, {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, reward_model.score(PROMPT, texts[i])))
               for i in range(3)]
    coalescer = reward_model._coalescer

    queue_behind(reward_model._lock, coalescer, threads, seconds=5)  # the first pass waits while the others queue
    for t in threads:
        t.join(5)
    assert reward_model.passes - before == 2  # the two that queued shared one pass
    assert [results[i] for i in range(3)] == [pytest.approx(a, abs=1e-5) for a in alone]


RAG = Prompt.of([("system", "Context: the pool opens at 7:15 AM."), ("user", "Notes below.\nWhen does it open?")],
                request="When does it open?")


def test_a_callable_reward_gets_the_arguments_its_signature_names():
    from darwin_chains.protocols import CallableReward

    seen = []
    shapes = {
        "instruction": lambda instruction, response: seen.append(instruction) or 1.0,
        "prompt": lambda prompt, response: seen.append(prompt) or 2.0,
        "context": lambda instruction, response, context: seen.append(context) or 3.0,
    }
    for expected, (shape, fn) in enumerate(shapes.items(), start=1):
        assert CallableReward(fn).shape == shape
        assert as_reward(fn).score(RAG, ["a", "b"]) == [float(expected)] * 2
    assert seen == [RAG.instruction] * 2 + [RAG] * 2 + ["Context: the pool opens at 7:15 AM.\n\nNotes below."] * 2
    assert CallableReward(lambda i, r, c: 0.0).shape == "context"  # three required arguments
    assert CallableReward(lambda instruction, response, context=None: 0.0).shape == "context"
    assert CallableReward(lambda *args: 0.0).shape == "instruction"


def test_an_async_callable_reward_sees_the_context_on_the_async_path():
    async def grounded(instruction, response, context):
        return float(response in context)

    assert asyncio.run(as_reward(grounded).ascore(RAG, ["7:15 AM", "9 AM"])) == [1.0, 0.0]


@pytest.mark.parametrize("fn, named", [
    (lambda response: 0.0, "(response)"),
    (lambda a, b, c, d: 0.0, "(a, b, c, d)"),
    (lambda instruction, response, *, context: 0.0, "*, context"),
])
def test_a_callable_reward_whose_signature_fits_no_shape_is_refused(fn, named):
    from darwin_chains import ConfigError

    with pytest.raises(ConfigError, match=r"\(instruction, response, context\)") as error:
        as_reward(fn)
    assert named in str(error.value)
