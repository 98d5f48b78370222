"""The search's own logic (Algorithm 1 and the baselines), driven by the shipped fakes in milliseconds.

The same behaviour is checked on real models in test_embedded.py and test_hf_policy.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math

import pytest

from darwin_chains import (
    ConfigError,
    InputError,
    MutationError,
    RewardError,
    Search,
    SearchConfig,
    TemplateMutator,
)
from darwin_chains.testing import FakePolicy, KeywordReward

from tests.support.searches import suffix_mutator, without_timings  # test_engine, test_embedded import it here

INSTRUCTION = "tell me about the cat"


def make(config: SearchConfig | None = None, *, stop: float = 0.02, reward=None, mutator=suffix_mutator, **kw):
    policy = FakePolicy(stop=stop, **kw)
    return Search(policy, reward or KeywordReward(), mutator, config or SearchConfig(max_new_tokens=60,
                                                                                      replacement_period=10))


def test_rewards_are_always_computed_against_the_original_instruction():
    reward = KeywordReward()
    make(reward=reward).run(INSTRUCTION)
    assert reward.seen and {instruction for instruction, _ in reward.seen} == {INSTRUCTION}


def test_replacement_follows_the_paper():
    search = make(SearchConfig(mutants=5, keep_top=2, max_new_tokens=40, replacement_period=10), stop=0.03)
    trace = search.run(INSTRUCTION).trace
    cycle = trace.cycles[0]
    assert len(cycle.instructions) == 5
    assert cycle.periods, "at least one replacement round"
    for before, period in zip([None] + cycle.periods, cycle.periods):
        ranked = sorted(range(5), key=lambda i: -period.rewards[i])
        assert sorted(period.top) == sorted(ranked[:2])
        for replaced, donor in period.replacements:
            assert replaced not in period.top and donor in period.top
            # finished beams are never replaced
            assert before is None or not before.finished[replaced]
        untouched = set(range(5)) - set(period.top) - {r for r, _ in period.replacements}
        assert all(period.finished[i] for i in untouched)
    assert sum(cycle.top_counts) == 2 * len(cycle.periods)


def test_a_replaced_beam_keeps_its_own_instruction():
    policy = FakePolicy(stop=0.0)
    search = Search(policy, KeywordReward(), suffix_mutator, SearchConfig(max_new_tokens=30, replacement_period=10))
    seen_prompts = []
    original = policy.extend

    def spy(beams, n, sampling, seed):
        seen_prompts.append([b.prompt.request for b in beams])
        return original(beams, n, sampling, seed)

    policy.extend = spy
    search.run(INSTRUCTION)
    variants = suffix_mutator(INSTRUCTION, 5)
    cycle_calls = [call for call in seen_prompts if call != [INSTRUCTION]]  # the seed sample decodes on its own
    assert cycle_calls and all(call == variants for call in cycle_calls)


def test_the_seed_sample_decodes_while_the_mutator_writes():
    """The seed sample's first period overlaps the mutation: the mutator is called while that extend runs."""
    import threading

    policy, during = FakePolicy(stop=0.0), []
    extending, mutating = threading.Event(), threading.Event()
    original = policy.extend

    def extend(beams, n, sampling, seed):
        if [b.prompt.request for b in beams] == [INSTRUCTION] and not during:
            extending.set()
            during.append(mutating.wait(5))  # the mutator is called while the seed sample decodes
        return original(beams, n, sampling, seed)

    def mutator(instruction, n):
        mutating.set()
        extending.wait(5)
        return suffix_mutator(instruction, n)

    policy.extend = extend
    trace = Search(policy, KeywordReward(), mutator, SearchConfig(max_new_tokens=30, replacement_period=10)) \
        .run(INSTRUCTION).trace
    assert during == [True]
    assert trace.seed_sample is not None and trace.seed_sample.response
    assert [p.tokens for p in trace.cycles[0].periods] == [10, 20]  # the cycle's periods are its own


def test_archive_takes_winners_that_beat_the_parent():
    search = make(SearchConfig(mutation_cycles=3, max_new_tokens=30, replacement_period=10, seed=3))
    trace = search.run(INSTRUCTION).trace
    assert len(trace.cycles) == 3
    assert trace.cycles[0].archive_before == [{"instruction": INSTRUCTION, "reward": None}]
    json.dumps(trace.to_dict(), allow_nan=False)  # strict JSON: no Infinity for the unsampled original
    for cycle in trace.cycles:
        after = {e["instruction"] for e in cycle.archive_after}
        new = after - {e["instruction"] for e in cycle.archive_before}
        for instruction in new:
            slot = cycle.instructions.index(instruction)
            assert cycle.final_rewards[slot] > (cycle.parent_reward if cycle.parent_reward is not None else -math.inf)
        assert len(new) <= search.config.archive_size
    # the later cycles mutate an archived instruction
    assert {c.parent for c in trace.cycles[1:]} <= {e["instruction"] for c in trace.cycles for e in c.archive_after}


def test_answer_is_the_best_candidate_including_the_seed_sample():
    result = make().run(INSTRUCTION)
    trace = result.trace
    assert trace.seed_sample is not None
    everything = [trace.seed_sample.reward] + [r for c in trace.cycles for r in c.final_rewards]
    assert result.reward == max(everything)
    assert result.finished


def test_seed_sample_can_be_switched_off():
    trace = make(SearchConfig(seed_sample=False, max_new_tokens=20, replacement_period=10)).run(INSTRUCTION).trace
    assert trace.seed_sample is None


def test_drafts_join_the_population_so_the_answer_is_never_worse():
    draft = "cat cat cat cat"  # the best possible response under the keyword reward
    result = make().run(INSTRUCTION, drafts=[draft])
    assert result.answer == draft and result.trace.answer_source == "draft"
    weak = make().run(INSTRUCTION, drafts=["dog"])
    assert weak.reward >= weak.trace.drafts[0].reward


def test_same_seed_same_answer_and_trace():
    a = make(SearchConfig(mutation_cycles=2, max_new_tokens=30, replacement_period=10, seed=11)).run(INSTRUCTION)
    b = make(SearchConfig(mutation_cycles=2, max_new_tokens=30, replacement_period=10, seed=11)).run(INSTRUCTION)
    c = make(SearchConfig(mutation_cycles=2, max_new_tokens=30, replacement_period=10, seed=12)).run(INSTRUCTION)
    strip = lambda r: without_timings(r.trace.to_dict())
    assert a.answer == b.answer and strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_sync_and_async_give_the_same_result():
    config = SearchConfig(mutation_cycles=2, max_new_tokens=30, replacement_period=10, seed=5)
    sync = make(config).run(INSTRUCTION)
    asynchronous = asyncio.run(make(config).arun(INSTRUCTION))
    assert sync.answer == asynchronous.answer and sync.reward == asynchronous.reward


def test_identical_responses_are_scored_once():
    # With no stop and one word, every beam writes the same text: one reward call per distinct response.
    policy = FakePolicy(words=["cat"], echo=0.0)
    reward = KeywordReward()
    trace = Search(policy, reward, suffix_mutator, SearchConfig(max_new_tokens=30, replacement_period=10)).run(
        INSTRUCTION).trace
    assert len(reward.seen) == trace.reward_calls == len({r for _, r in reward.seen})
    assert trace.reward_cache_hits > 0


@pytest.mark.parametrize("method", ["best-of-n", "sample", "mutation-best-of-n"])
def test_baselines_without_replacement_decode_in_one_go(method):
    policy = FakePolicy(stop=0.0)
    search = Search(policy, KeywordReward(), suffix_mutator, SearchConfig(method=method, max_new_tokens=40))
    result = search.run(INSTRUCTION)
    assert policy.calls == [(1 if method == "sample" else 5, 40)]
    assert all(not c.periods for c in result.trace.cycles)
    instructions = result.trace.cycles[0].instructions
    assert (instructions == suffix_mutator(INSTRUCTION, 5)) == (method == "mutation-best-of-n")
    assert result.trace.seed_sample is None


def test_sampling_with_replacement_does_not_mutate():
    trace = make(SearchConfig(method="sample-replace", max_new_tokens=40, replacement_period=10)).run(
        INSTRUCTION).trace
    assert set(trace.cycles[0].instructions) == {INSTRUCTION}
    assert trace.cycles[0].periods and trace.mutator is None


def test_look_ahead_scores_after_throwaway_tokens():
    base = make(SearchConfig(max_new_tokens=30, replacement_period=10, seed=1)).run(INSTRUCTION).trace
    ahead = make(SearchConfig(max_new_tokens=30, replacement_period=10, look_ahead=5, seed=1)).run(INSTRUCTION).trace
    assert ahead.look_ahead_tokens > 0 and base.look_ahead_tokens == 0
    assert ahead.tokens_generated >= base.tokens_generated + ahead.look_ahead_tokens - 5 * 5


def test_policy_that_cannot_continue_runs_at_response_granularity():
    policy = FakePolicy(supports_continuation=False)
    result = Search(policy, KeywordReward(), suffix_mutator, SearchConfig(max_new_tokens=20)).run(INSTRUCTION)
    assert result.trace.granularity == "response"
    assert any("response granularity" in n for n in result.trace.notes)
    assert all(not p.replacements for c in result.trace.cycles for p in c.periods)
    assert result.answer


def test_nan_reward_is_a_clear_error_with_the_partial_result():
    calls = {"n": 0}

    def flaky(instruction, response):
        calls["n"] += 1
        return float("nan") if calls["n"] > 6 else 0.5

    with pytest.raises(RewardError, match=r"reward 'flaky' returned nan .* finite floats") as err:
        make(reward=flaky).run(INSTRUCTION)
    assert err.value.partial is not None and err.value.partial.trace.cycles


def test_raising_reward_names_the_component():
    def broken(instruction, response):
        raise ValueError("judge unavailable")

    with pytest.raises(RewardError, match="reward 'broken' raised ValueError: judge unavailable"):
        make(reward=broken).run(INSTRUCTION)


def test_reward_with_wrong_number_of_scores():
    class Short:
        name = "short"

        def score(self, prompt, responses):
            return [1.0]

    with pytest.raises(RewardError, match="returned 1 scores for 5 responses"):
        make(reward=Short()).run(INSTRUCTION)


def test_garbage_mutator_falls_back_to_the_original_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        trace = make(mutator=lambda instruction, n: ["", "   "]).run(INSTRUCTION).trace
    assert trace.cycles[0].instructions == [INSTRUCTION] * 5
    assert trace.mutation_fallbacks == 5
    assert "usable variants" in caplog.text


def test_raising_mutator_is_a_mutation_error():
    def broken(instruction, n):
        raise RuntimeError("boom")

    with pytest.raises(MutationError, match="mutator 'broken' raised RuntimeError: boom"):
        make(mutator=broken).run(INSTRUCTION)


def test_time_budget_returns_the_best_answer_so_far():
    policy = FakePolicy(stop=0.0)
    slow = {"calls": 0}
    original = policy.extend

    def slow_extend(*args):
        slow["calls"] += 1
        import time

        time.sleep(0.05)
        return original(*args)

    policy.extend = slow_extend
    search = Search(policy, KeywordReward(), suffix_mutator,
                    SearchConfig(max_new_tokens=1000, replacement_period=10, time_budget=0.12, mutation_cycles=3))
    result = search.run(INSTRUCTION)
    assert result.trace.stopped == "time_budget"
    assert not result.finished and result.answer and result.trace.answer_source == "partial"
    assert slow["calls"] < 10


def test_reward_threshold_stops_early():
    result = make(SearchConfig(mutation_cycles=3, reward_threshold=0.0, max_new_tokens=30, replacement_period=10)
                  ).run(INSTRUCTION)
    assert result.trace.stopped == "reward_threshold" and len(result.trace.cycles) == 1


def test_settled_prefix_only_grows_and_starts_the_answer():
    settled = []
    policy = FakePolicy(words=["cat"], echo=0.0)  # all beams agree, so text settles as it is decoded
    result = Search(policy, KeywordReward(), suffix_mutator, SearchConfig(max_new_tokens=40, replacement_period=10)
                    ).run(INSTRUCTION, on_event=lambda kind, data: kind == "settled" and settled.append(data["text"]))
    assert settled and all(b.startswith(a) for a, b in zip(settled, settled[1:]))
    assert all(result.answer.startswith(s) for s in settled)


def test_events_report_progress():
    events = []
    make().run(INSTRUCTION, on_event=lambda kind, data: events.append(kind))
    assert events[0] == "search_started" and events[-1] == "search_finished"
    assert {"cycle_started", "period_scored", "archive_updated"} <= set(events)


@pytest.mark.parametrize("bad", [
    dict(keep_top=5), dict(keep_top=0), dict(mutants=0), dict(replacement_period=0), dict(max_new_tokens=0),
    dict(temperature=-1), dict(top_p=0), dict(method="beam"), dict(look_ahead=-1), dict(time_budget=0),
    dict(temperature=10 ** 400), dict(top_p=-(10 ** 400)), dict(time_budget=10 ** 400), dict(temperature=float("inf")),
    dict(reward_threshold=10 ** 400), dict(reward_threshold=float("nan")), dict(top_p=float("nan")),
])
def test_bad_configuration_fails_at_construction(bad):  # an int past float range once raised OverflowError
    with pytest.raises(ConfigError):
        SearchConfig().replace(**bad)


def test_keep_top_error_names_the_beam_count():
    with pytest.raises(ConfigError, match=r"keep_top \(k\) .* = 4\) .* k=4"):
        SearchConfig(mutants=2, beams_per_mutant=2, keep_top=4)
    SearchConfig(method="best-of-n", mutants=2, keep_top=4)  # no replacement, no constraint


@pytest.mark.parametrize("prompt", ["", "   \n", [{"role": "user", "content": " "}]])
def test_empty_instruction_is_refused(prompt):
    with pytest.raises(InputError, match="instruction is empty"):
        make().run(prompt)


def test_prompt_too_long_names_both_lengths():
    search = make(SearchConfig(max_new_tokens=20, replacement_period=10), max_context=50)
    with pytest.raises(InputError, match=r"prompt has 60 tokens .* 20 new tokens .* context window is 50"):
        search.run("cat " * 60)


def test_rag_context_reaches_every_beam_unchanged():
    from darwin_chains import Prompt

    context = "Context: the cat is called Tom."
    prompt = Prompt.of([{"role": "system", "content": context},
                        {"role": "user", "content": f"{context}\n\nQuestion: what is the cat called?"}],
                       request="what is the cat called?")
    policy = FakePolicy()
    prompts = []
    original = policy.start
    policy.start = lambda ps, n: prompts.extend(ps) or original(ps, n)
    Search(policy, KeywordReward(), TemplateMutator(), SearchConfig(max_new_tokens=20, replacement_period=10)).run(
        prompt)
    mutated = [p for p in prompts if p.request != prompt.request]
    assert mutated
    for p in prompts:
        assert p.messages[0]["content"] == context
        assert p.instruction.startswith(f"{context}\n\nQuestion: ")


def test_plain_callable_reward_and_mutator_with_search_overrides():
    search = Search(FakePolicy(), lambda i, r: len(r), suffix_mutator, mutants=3, keep_top=1, max_new_tokens=20)
    assert search.config.beams == 3
    result = search.run(INSTRUCTION, max_new_tokens=10)
    assert result.trace.config["max_new_tokens"] == 10


def test_tokens_spent_by_an_llm_mutator_are_counted():
    from darwin_chains import LLMMutator

    class Rewriter(FakePolicy):
        """Answers every request with a numbered list of rewrites."""

        def extend(self, beams, n, sampling, seed):
            usage = super().extend(beams, n, sampling, seed)
            for b in beams:
                b.response, b.finished = "1. tell me about the cat please\n2. describe the cat to me", True
            return usage

    mutator = LLMMutator(Rewriter(), max_new_tokens=7)
    trace = Search(FakePolicy(), KeywordReward(), mutator, SearchConfig(max_new_tokens=20, replacement_period=10)
                   ).run(INSTRUCTION).trace
    assert trace.mutation_tokens == 7
    assert trace.cycles[0].instructions[:2] == ["tell me about the cat please", "describe the cat to me"]
    assert trace.tokens_generated >= trace.cycles[0].tokens_generated >= 7


def test_the_first_cycles_of_a_longer_search_equal_a_shorter_search():
    """Benchmarks read Darwin with 1 and 2 cycles off a 3-cycle run; that is exact only if this holds."""
    config = SearchConfig(max_new_tokens=30, replacement_period=10, seed=9)
    three = make(config.replace(mutation_cycles=3)).run(INSTRUCTION).trace.to_dict()
    for cycles in (1, 2):
        shorter = make(config.replace(mutation_cycles=cycles)).run(INSTRUCTION).trace.to_dict()
        assert without_timings(shorter["cycles"]) == without_timings(three["cycles"][:cycles])
