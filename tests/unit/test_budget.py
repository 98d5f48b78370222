"""A search that a time budget stops keeps its finished work, and its result is always strict JSON."""
from __future__ import annotations

import json
import math
import time

import pytest

from darwin_chains import BudgetError, Search, SearchConfig
from darwin_chains.protocols import Usage
from darwin_chains.testing import KeywordReward, ScriptedPolicy
from darwin_chains.trace import Cycle, SearchResult, Trace

INSTRUCTION = "tell me about the cat"


class OverBudgetPolicy(ScriptedPolicy):
    """Every extend takes longer than the budget, so the budget runs out right after the first one."""

    def extend(self, beams, max_new_tokens, sampling, seed):
        time.sleep(0.05)
        return super().extend(beams, max_new_tokens, sampling, seed)


class SlowReward(KeywordReward):
    def score(self, prompt, responses):
        time.sleep(0.05)
        return super().score(prompt, responses)


def strict(text: str) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_beams_that_finish_as_the_budget_runs_out_are_scored_and_kept():
    policy = OverBudgetPolicy([" a cat", " the cat cat", " no"])
    search = Search(policy, KeywordReward(), None,
                    SearchConfig(method="best-of-n", mutants=3, max_new_tokens=20, time_budget=0.01))
    result = search.run(INSTRUCTION)
    assert result.trace.stopped == "time_budget"
    assert (result.answer, result.finished) == (" the cat cat", True)
    assert math.isfinite(result.reward) and result.reward == pytest.approx(2 / 3)
    assert strict(result.to_json())["reward"] == pytest.approx(2 / 3)


def test_a_finished_seed_sample_is_scored_when_the_budget_stops_the_cycle():
    policy = OverBudgetPolicy([" cat", " a b c d e f g h", " i j k l m n o p"])  # the seed sample takes the first
    search = Search(policy, KeywordReward(), lambda instruction, n: [instruction] * n,
                    SearchConfig(mutants=2, keep_top=1, replacement_period=2, max_new_tokens=20, time_budget=0.01))
    result = search.run(INSTRUCTION)
    assert result.trace.stopped == "time_budget"
    assert result.trace.seed_sample is None, "the cycle never finished"
    assert (result.answer, result.reward, result.finished) == (" cat", 1.0, True)


def test_when_nothing_finished_the_best_partial_response_still_has_a_finite_reward():
    # Look-ahead scores throw-away probes, never the beams themselves: without the last scoring none is scored.
    policy = OverBudgetPolicy([" a b c d e f g h", " cat cat c d e f g h", " i j k l m n o p"])
    search = Search(policy, KeywordReward(), None,
                    SearchConfig(method="sample-replace", mutants=3, keep_top=1, replacement_period=2, look_ahead=1,
                                 max_new_tokens=20, time_budget=0.01))
    result = search.run(INSTRUCTION)
    assert result.finished is False and result.answer == " cat cat"
    assert result.reward == 1.0
    strict(result.to_json())


class StalledPolicy(ScriptedPolicy):
    """A prompt that takes longer to encode than the budget: the first extend spends it all and decodes nothing."""

    def extend(self, beams, max_new_tokens, sampling, seed):
        time.sleep(0.05)
        return Usage(requests=1)


def test_a_budget_that_ends_before_any_text_is_decoded_is_an_error_that_says_so():
    search = Search(StalledPolicy(default=" cat"), KeywordReward(), None,
                    SearchConfig(method="sample-replace", mutants=2, keep_top=1, replacement_period=2,
                                 max_new_tokens=8, time_budget=0.01))
    with pytest.raises(BudgetError, match=r"ran out of its time_budget \(0.01 s\) before it decoded any text.*"
                                          r"raise time_budget or shorten the prompt"):
        search.run(INSTRUCTION)


def test_a_slow_reward_past_the_budget_still_leaves_a_finite_answer():
    policy = ScriptedPolicy([" cat", " dog"])
    search = Search(policy, SlowReward(), None,
                    SearchConfig(method="best-of-n", mutants=2, max_new_tokens=20, time_budget=0.01))
    result = search.run(INSTRUCTION, drafts=["a draft"])  # scoring the draft spends the whole budget
    assert result.trace.stopped == "time_budget" and result.answer == " cat" and result.reward == 1.0


def test_non_finite_numbers_never_reach_json():
    trace = Trace("darwin", {}, "p", "r", None, "token", {}, 0,
                  cycles=[Cycle(0, "x", None, ["x"], final_rewards=[float("nan")])])
    result = SearchResult("", -math.inf, trace, finish_reason="length")
    data = strict(result.to_json())
    assert data["reward"] is None and data["trace"]["cycles"][0]["final_rewards"] == [None]
    assert result.metadata()["reward"] is None and trace.to_dict()["cycles"][0]["final_rewards"] == [None]


def test_the_cli_prints_strict_json_when_the_budget_runs_out(tiny_llama, tiny_reward_model, capsys):
    from darwin_chains.cli import main

    code = main(["align", "--json", "--method", "best-of-n", "--mutants", "2", "--max-new-tokens", "8",
                 "--time-budget", "0.001", "--policy", str(tiny_llama), "--reward", f"hf:{tiny_reward_model}",
                 "--progress", "off", INSTRUCTION])
    out, err = capsys.readouterr()
    if code != 0:  # the budget ran out before a token was decoded: no answer, and a message that says why
        assert "ran out of its time_budget" in err and "Traceback" not in err and not out
        return
    data = strict(out)
    assert data["trace"]["stopped"] == "time_budget"
    # the budget is a hard wall: the samples stop where it found them, so the answer is the best partial one
    # (perhaps empty, then with no reward: strict JSON has null, never NaN or -Infinity)
    assert (data["finished"], data["finish_reason"]) == (False, "length")
    assert data["reward"] is None or isinstance(data["reward"], float)
