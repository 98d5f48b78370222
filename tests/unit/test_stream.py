"""`Search.stream` and `Search.astream`: typed events that add up to the answer, and a search that stops when its
reader does. Driven by the shipped fakes; the adapters' streaming tests run the same paths through LangChain and
LlamaIndex."""
from __future__ import annotations

import asyncio
import threading

import pytest

from darwin_chains import Search, SearchConfig, SearchResult
from darwin_chains.search.stream import Commit, Delta, Final, Progress, cut
from darwin_chains.testing import FakePolicy, KeywordReward

from tests.support.loop_watch import LoopWatch
from tests.support.searches import SlowPolicy, suffix_mutator

INSTRUCTION = "tell me about the cat"
# One cycle, keep_top=1 and no seed sample: after every replacement round all beams continue the top answer, so
# its start settles period by period.
SETTLING = SearchConfig(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=24, seed_sample=False, seed=0)


def search(policy=None, **overrides) -> Search:
    return Search(policy or FakePolicy(), KeywordReward(), suffix_mutator, SETTLING, **overrides)


def _parts(events) -> tuple[list[str], Final]:
    *rest, final = events
    assert isinstance(final, Final) and all(not isinstance(e, Final) for e in rest)
    return [e.text for e in rest if isinstance(e, Delta)], final


def test_deltas_and_the_final_rest_add_up_to_the_answer():
    deltas, final = _parts(list(search().stream(INSTRUCTION)))
    assert len(deltas) > 1 and all(deltas), "settled text should arrive in pieces before the end"
    assert "".join(deltas) + final.delta == final.result.answer == search().run(INSTRUCTION).answer
    assert isinstance(final.result, SearchResult) and final.result.finish_reason in ("stop", "length")


def test_with_stop_sequences_the_deltas_add_up_to_the_cut_answer():
    answer = search().run(INSTRUCTION).answer
    words = answer.split()
    stop = [f" {words[len(words) // 2]} "]  # a stop sequence that occurs mid-answer
    deltas, final = _parts(list(search().stream(INSTRUCTION, stop=stop)))
    assert "".join(deltas) + final.delta == cut(answer, stop) != answer
    assert final.result.answer == answer  # the result itself is the search's, uncut


def test_progress_events_arrive_in_the_order_the_search_takes_its_steps():
    events = list(search(mutation_cycles=2, seed_sample=True).stream(INSTRUCTION))
    kinds = [e.kind for e in events if isinstance(e, Progress)]
    assert kinds[0] == "search_started" and kinds[-1] == "search_finished"
    assert kinds.count("cycle_started") == kinds.count("archive_updated") == 2
    first, second = kinds.index("cycle_started"), kinds.index("cycle_started", kinds.index("archive_updated"))
    assert first < kinds.index("period_scored") < kinds.index("archive_updated") < second
    assert "replacement" in kinds and "settled" not in kinds
    started = next(e for e in events if isinstance(e, Progress) and e.kind == "cycle_started")
    assert started.data["parent"] == INSTRUCTION and len(started.data["instructions"]) == 3


def test_the_search_error_is_raised_to_the_reader():
    broken = Search(FakePolicy(), lambda instruction, response: 1 / 0, suffix_mutator, SETTLING)
    with pytest.raises(Exception, match="ZeroDivisionError"):
        list(broken.stream(INSTRUCTION))


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "darwin-search"]


def test_closing_the_stream_early_stops_the_search_within_one_step():
    policy = SlowPolicy(delay=0.02)
    events = search(policy, max_new_tokens=400, replacement_period=1).stream(INSTRUCTION)
    assert isinstance(next(e for e in events if isinstance(e, Delta)), Delta)
    events.close()
    at_close = len(policy.calls)
    for worker in _workers():
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert len(policy.calls) <= at_close + 1  # at most the step already under way
    assert len(policy.calls) < 100  # a whole search would extend 400 times


def test_the_worker_runs_on_a_copy_of_the_given_context():
    import contextvars

    who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    seen = []

    def reward(instruction: str, response: str) -> float:
        seen.append(who.get())
        return 0.0

    context = contextvars.copy_context()
    context.run(who.set, "caller")
    list(Search(FakePolicy(), reward, suffix_mutator, SETTLING).stream(INSTRUCTION, context=context))
    assert seen and set(seen) == {"caller"}
    context.run(lambda: None)  # the caller can still enter its context: the worker ran on a copy


async def test_astream_gives_the_stream_events():
    sync = list(search().stream(INSTRUCTION))
    events = [e async for e in search().astream(INSTRUCTION)]
    assert [type(e) for e in events] == [type(e) for e in sync]
    assert _parts(events)[0] == _parts(sync)[0] and events[-1].delta == sync[-1].delta
    assert events[-1].result.answer == sync[-1].result.answer


async def test_closing_the_async_stream_cancels_the_search():
    policy = SlowPolicy(delay=0.02)
    events = search(policy, max_new_tokens=400, replacement_period=1).astream(INSTRUCTION)
    async for event in events:
        if isinstance(event, Delta):
            break
    await events.aclose()
    at_close = len(policy.calls)
    await asyncio.sleep(0.3)  # a running search would extend about 15 more times
    assert len(policy.calls) <= at_close + 1 and len(policy.calls) < 100


async def test_cancelling_the_consumer_cancels_the_search():
    policy = SlowPolicy(delay=0.02)

    async def consume():
        async for _ in search(policy, max_new_tokens=400, replacement_period=1).astream(INSTRUCTION):
            pass

    consumer = asyncio.create_task(consume())
    while not policy.calls:
        await asyncio.sleep(0.01)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    at_cancel = len(policy.calls)
    await asyncio.sleep(0.3)
    assert 0 < at_cancel and len(policy.calls) <= at_cancel + 1


async def test_the_event_loop_keeps_running_while_an_astream_searches():
    """Every extend waits for a tick of the loop before it runs: one run on the loop would wait in vain."""
    watch = LoopWatch()
    policy = FakePolicy()
    policy.extend = watch.gated(policy.extend)
    async with watch.ticking():
        events = [e async for e in search(policy).astream(INSTRUCTION)]
    assert isinstance(events[-1], Final)
    assert watch.blocked == 0, f"{watch.blocked} of {len(policy.calls)} extends ran while the loop was held"
    assert watch.free == len(policy.calls) >= 6  # six periods


def test_commit_sends_only_new_settled_text_and_holds_back_a_possible_stop_sequence():
    commit = Commit()
    assert [commit.settled("The cat "), commit.settled("The cat "), commit.settled("The cat sat "),
            commit.final("The cat sat on the mat.")] == ["The cat ", "", "sat ", "on the mat."]
    commit = Commit(stop=["END"])
    pieces = [commit.settled("one E"), commit.settled("one Ever "), commit.final("one Ever twoEND three")]
    assert pieces == ["one ", "Ever ", "two"]


DEFAULTS = SearchConfig(max_new_tokens=40, replacement_period=8, seed=0)  # 5 mutants, keep_top 3, the seed sample


def test_with_default_settings_a_stream_commits_to_its_leader_and_text_settles_each_period():
    events = list(search().stream(INSTRUCTION, drafts=["a dog"], **DEFAULTS.to_dict()))
    deltas, final = _parts(events)
    scored = [i for i, e in enumerate(events) if isinstance(e, Progress) and e.kind == "period_scored"]
    first_text = next(i for i, e in enumerate(events) if isinstance(e, Delta))
    assert len(deltas) >= 2 and first_text < scored[-1]
    assert "".join(deltas) + final.delta == final.result.answer
    trace = final.result.trace
    assert all(p.top == p.top[:1] for p in trace.cycles[0].periods)  # k is 1 once committed
    assert trace.seed_sample.finish_reason == "retired" and trace.answer_source.startswith("cycle 0")
    assert any("retired draft, seed sample (stream_commit)" in n for n in trace.notes)


def test_without_commit_or_unstreamed_the_search_is_unchanged():
    config = DEFAULTS.to_dict()
    unstreamed = search().run(INSTRUCTION, **config)
    _, final = _parts(list(search().stream(INSTRUCTION, **{**config, "stream_commit": False})))
    assert final.result.answer == unstreamed.answer and final.result.reward == unstreamed.reward
    assert [p.top for p in final.result.trace.cycles[0].periods] == [p.top for p in unstreamed.trace.cycles[0].periods]
    assert len(unstreamed.trace.cycles[0].periods[0].top) == 3 and unstreamed.trace.seed_sample.finish_reason != "retired"
