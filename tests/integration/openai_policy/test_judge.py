"""JudgeReward against the real `transformers serve` (SmolLM2), through the real `openai` client.

This server returns no log-probabilities, so scores come from the parsed reply; the expected-score path is checked
on a reply shaped as OpenAI sends it. SmolLM2-135M is too weak to judge well: in completions mode the "Score:"
prefix makes it say a number; in chat mode it answers the instruction instead, which must fail loudly.
"""
from __future__ import annotations

import asyncio
import math

import pytest
from openai.types.chat import ChatCompletion

from darwin_chains import Prompt, RewardError, Search, SearchConfig
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.policies.openai.transport import replies
from darwin_chains.rewards.judge import JudgeReward, expected_score, parse_score
from darwin_chains.testing import FakePolicy

PROMPT = Prompt.of("Give three tips for writing a clear email.")


def test_judge_scores_in_range_with_usage(served_smollm2, smollm2_dir):
    judge = JudgeReward(OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, tokenizer=smollm2_dir))
    scores = judge.score(PROMPT, ["Use a clear subject line, keep it short, and proofread.", "banana"])
    assert len(scores) == 2 and all(math.isfinite(s) and 1 <= s <= 10 for s in scores)
    assert scores.usage.requests == 2 and scores.usage.output_tokens > 0
    again = asyncio.run(judge.ascore(PROMPT, ["Use a clear subject line."]))
    assert 1 <= again[0] <= 10


def test_judge_drives_a_search_and_its_tokens_are_counted(served_smollm2, smollm2_dir):
    judge = JudgeReward(OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, tokenizer=smollm2_dir))
    config = SearchConfig(method="best-of-n", mutants=2, max_new_tokens=6, seed=0)
    result = Search(FakePolicy(), judge, None, config).run(PROMPT)
    assert 1 <= result.reward <= 10 and result.trace.reward_tokens > 0


def test_judge_that_answers_instead_of_scoring_raises(served_smollm2, smollm2_dir):
    judge = JudgeReward(OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2))  # chat mode: no prefix to continue
    with pytest.raises(RewardError) as err:
        judge.score(PROMPT, ["Use a clear subject line."])
    assert "judge:" in str(err.value) and "reply began" in str(err.value)


def test_parser_on_real_replies():
    # Replies SmolLM2 gave this judge's rubric on this server.
    assert parse_score(" 10.", prefix="Score:") == 10
    for reply in ["1. Use a clear and", "You are a strict grader."]:
        with pytest.raises(RewardError, match="reply began"):
            parse_score(reply)
    assert parse_score("I'd give it 6 out of 10") == 6 and parse_score("**8**") == 8


def test_expected_score_from_chat_logprobs():
    reply = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "8"},
                     "logprobs": {"content": [{"token": "8", "logprob": math.log(0.75), "bytes": None,
                                               "top_logprobs": [
                                                   {"token": "8", "logprob": math.log(0.75), "bytes": None},
                                                   {"token": "6", "logprob": math.log(0.25), "bytes": None},
                                                   {"token": "The", "logprob": math.log(0.01), "bytes": None}]}]}}],
    })
    (choice,) = replies(reply)
    assert expected_score(choice.top_logprobs) == pytest.approx(7.5)
