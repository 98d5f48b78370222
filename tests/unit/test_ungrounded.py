"""What a search does with its answers' groundedness verdicts (`on_ungrounded`), driven by the shipped fakes and a
scripted checker in milliseconds. The real check (MiniLM and the SmolLM2 reader) is tested in
tests/integration/test_grounding.py."""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains import ConfigError, Search, SearchConfig
from darwin_chains.errors import UngroundedError
from darwin_chains.search.driver import ABSTENTION
from darwin_chains.testing import FakePolicy, KeywordReward

from tests.support.grounding import Checker
from tests.support.searches import suffix_mutator

PROMPT = [("system", "Context: the cat sleeps 16 hours a day."), ("user", "tell me about the cat")]
CONFIG = SearchConfig(max_new_tokens=40, replacement_period=10, seed=1)


def search(checker, **config) -> Search:
    return Search(FakePolicy(stop=0.02), KeywordReward(), suffix_mutator, CONFIG.replace(**config), grounding=checker)


def test_the_answer_carries_its_verdict_and_the_default_keeps_the_best_answer():
    plain = search(False).run(PROMPT)
    checker = Checker(limit=1)  # every answer with a "cat" is ungrounded
    result = search(checker).run(PROMPT)
    assert result.answer == plain.answer and result.reward == plain.reward  # "answer" changes nothing
    assert checker.seen == [result.answer]  # one verdict: the answer's
    assert result.grounding == {"grounded": False, "score": 0.0, "unsupported": ["cat"], "checked": 1}
    assert result.metadata()["grounding"] == result.grounding and result.to_dict()["grounding"] == result.grounding
    assert plain.grounding is None  # grounding=False: no verdict


def test_no_verdict_when_the_check_does_not_apply_to_the_prompt():
    checker = Checker(limit=1, applies=False)
    result = search(checker, on_ungrounded="raise").run(PROMPT)
    assert result.grounding is None and checker.seen == []


@pytest.mark.parametrize("mode", ["flag", "abstain", "raise"])
def test_a_grounded_candidate_wins_over_a_better_rewarded_ungrounded_one(mode):
    best = search(False).run(PROMPT)
    limit = best.answer.split().count("cat")  # the best answer, and any as catty, is ungrounded
    result = search(Checker(limit), on_ungrounded=mode).run(PROMPT)
    assert result.answer.split().count("cat") < limit and result.reward < best.reward
    assert result.grounding["grounded"] and result.grounding["action"] == "replaced"
    assert any("returned the best grounded candidate" in n for n in result.trace.notes)


def test_abstain_answers_that_the_context_does_not_say_when_nothing_is_grounded():
    result = search(Checker(limit=0), on_ungrounded="abstain").run(PROMPT)
    assert result.answer == ABSTENTION and result.trace.answer_source == "abstention"
    assert result.grounding["action"] == "abstained" and not result.grounding["grounded"]
    assert all(r for r in result.trace.cycles[0].responses)  # what the search found stays in the trace


def test_raise_raises_with_the_best_answer_on_the_error():
    with pytest.raises(UngroundedError, match="no candidate answer is grounded.*on_ungrounded") as caught:
        search(Checker(limit=0), on_ungrounded="raise").run(PROMPT)
    partial = caught.value.partial
    assert partial.answer and partial.grounding["unsupported"] == ["cat"]


def test_flag_returns_the_best_answer_flagged_when_nothing_is_grounded(caplog):
    plain = search(False).run(PROMPT)
    result = search(Checker(limit=0), on_ungrounded="flag").run(PROMPT)
    assert result.answer == plain.answer and result.grounding["action"] == "flagged"
    assert "on_ungrounded=flag" in caplog.text


def test_the_async_search_gives_the_same_verdict_and_answer():
    sync = search(Checker(limit=0), on_ungrounded="abstain").run(PROMPT)
    async_ = asyncio.run(search(Checker(limit=0), on_ungrounded="abstain").arun(PROMPT))
    assert (async_.answer, async_.grounding) == (sync.answer, sync.grounding)


def test_a_failing_check_leaves_a_note_and_the_answer():
    class Broken(Checker):
        def verdict(self, prompt, response):
            raise RuntimeError("reader unavailable")

    result = search(Broken(), on_ungrounded="raise").run(PROMPT)
    assert result.answer and result.grounding is None
    assert any("groundedness check failed (RuntimeError: reader unavailable)" in n for n in result.trace.notes)


def test_a_misspelt_mode_is_a_config_error_naming_the_choices():
    with pytest.raises(ConfigError, match="on_ungrounded must be one of answer, flag, abstain, raise"):
        SearchConfig(on_ungrounded="abstian")
