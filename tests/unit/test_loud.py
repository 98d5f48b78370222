"""Component replies that used to be taken at face value now fail loudly, and the result says how the answer ended."""
from __future__ import annotations

import asyncio

import pytest
from darwin_chains import ConfigError, MutationError, RewardError, Search, SearchConfig
from darwin_chains.testing import FakePolicy, KeywordReward

INSTRUCTION = "tell me about the cat"
SMALL = SearchConfig(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=12)


def search(mutator=lambda instruction, n: [instruction] * n, reward=None, **policy) -> Search:
    return Search(FakePolicy(**policy), reward or KeywordReward(), mutator, SMALL)


def test_a_mutator_returning_a_string_is_a_mutation_error_not_a_list_of_characters():
    with pytest.raises(MutationError, match=r"mutator '<lambda>' must return a list of 3 strings .* got str 'Name"):
        search(mutator=lambda instruction, n: "Name three cats").run(INSTRUCTION)


def test_a_mutator_returning_other_things_than_strings_is_a_mutation_error():
    with pytest.raises(MutationError, match="must return a list of 3 strings"):
        search(mutator=lambda instruction, n: [instruction, 42, None]).run(INSTRUCTION)


@pytest.mark.parametrize("value", ["0.5", b"1", None, [0.5]])
def test_a_reward_must_return_numbers(value):
    with pytest.raises(RewardError, match="must return numbers, one per response"):
        search(reward=lambda instruction, response: value).run(INSTRUCTION)


def test_a_reward_returning_one_string_for_all_responses_is_refused():
    class Textual:
        def score(self, prompt, responses):
            return "0.5"

    with pytest.raises(RewardError, match="must return a list of numbers, one per response; got str '0.5'"):
        search(reward=Textual()).run(INSTRUCTION)


def test_numpy_and_int_scores_are_numbers():
    import numpy as np

    result = search(reward=lambda instruction, response: np.float32(len(response) % 3)).run(INSTRUCTION)
    assert isinstance(result.reward, float)
    assert search(reward=lambda instruction, response: 1).run(INSTRUCTION).reward == 1.0


def test_an_async_reward_on_the_sync_path_names_the_async_entry_point():
    async def judge(instruction: str, response: str) -> float:
        return 1.0

    with pytest.raises(RewardError, match="reward 'judge' is async .* use the async one: Search.arun"):
        search(reward=judge).run(INSTRUCTION)
    assert asyncio.run(search(reward=judge).arun(INSTRUCTION)).reward == 1.0  # and the async path awaits it


def test_an_async_mutator_on_the_sync_path_names_the_async_entry_point():
    async def rewrite(instruction: str, n: int) -> list[str]:
        return [f"{instruction}, briefly"] * n

    with pytest.raises(MutationError, match="mutator 'rewrite' is async .* Search.arun"):
        search(mutator=rewrite).run(INSTRUCTION)
    trace = asyncio.run(search(mutator=rewrite).arun(INSTRUCTION)).trace
    assert trace.cycles[0].instructions == [f"{INSTRUCTION}, briefly"] * 3


def test_an_answer_cut_at_max_new_tokens_reports_length_and_is_not_finished():
    result = search(stop=0.0).run(INSTRUCTION)  # the fake policy never ends a response by itself
    assert (result.finish_reason, result.finished) == ("length", False)
    assert result.metadata()["finish_reason"] == "length" and result.to_dict()["finished"] is False
    assert all(c.finish_reason == "length" for c in [*result.trace.drafts, result.trace.seed_sample])


def test_an_answer_that_ended_by_itself_reports_stop():
    result = search(stop=0.9).run(INSTRUCTION)  # every response ends within a token or two
    assert (result.finish_reason, result.finished) == ("stop", True)


def test_a_stop_sequence_ends_the_answer_with_stop():
    config = SMALL.replace(stop=["cat"], max_new_tokens=40)
    result = Search(FakePolicy(words=("a", "cat")), KeywordReward(("a",)), lambda i, n: [i] * n, config).run("a")
    assert "cat" not in result.answer and result.finish_reason == "stop"


def test_keep_top_defaults_to_fewer_than_the_beams():
    assert SearchConfig().keep_top_used == 3
    assert SearchConfig(mutants=3).keep_top_used == 2 and SearchConfig(mutants=2).keep_top_used == 1
    assert SearchConfig(mutants=3).to_dict()["keep_top"] == 2  # the trace shows what the search used
    assert SearchConfig(mutants=3, keep_top=1).keep_top_used == 1


def test_a_default_keep_top_that_cannot_work_says_it_was_the_default():
    with pytest.raises(ConfigError, match="keep_top was not given, and its default"):
        SearchConfig(mutants=1)
    with pytest.raises(ConfigError, match="got k=3"):
        SearchConfig(mutants=3, keep_top=3)
    assert SearchConfig(mutants=1, method="best-of-n").beams == 1  # no replacement: no keep_top needed
