"""The batching engine on a tiny real Llama: concurrent searches share forward passes and keep their own results."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from darwin_chains import HFPolicy, Prompt, Sampling, Search, SearchConfig
from darwin_chains.testing import KeywordReward
from tests.unit.test_search import without_timings

QUESTIONS = ["Name a colour.", "Say something about the sea, at some length please.", "Count to three."]
# Mixed sampling settings and lengths: each search brings its own.
CONFIGS = [
    SearchConfig(seed=1, mutants=3, keep_top=1, replacement_period=4, max_new_tokens=12),
    SearchConfig(seed=2, mutants=4, keep_top=2, replacement_period=6, max_new_tokens=20).replace(temperature=0.7, top_p=0.8),
    SearchConfig(seed=3, mutants=2, keep_top=1, replacement_period=5, max_new_tokens=9).replace(temperature=0.0),
]


def mutator(instruction: str, n: int) -> list[str]:
    return [f"{instruction} (variant {i})" for i in range(n)]


def searches(policy: HFPolicy) -> list[tuple[Search, str]]:
    return [(Search(policy, KeywordReward(), mutator, config), q) for config, q in zip(CONFIGS, QUESTIONS)]


def comparable(result) -> dict:
    """The answer and the whole trace but its seconds: what must not depend on who else was decoding."""
    return {"answer": result.answer, "trace": without_timings(result.trace.to_dict())}


@pytest.fixture
def fresh_policy(tiny_llama):
    return lambda **kw: HFPolicy.from_pretrained(tiny_llama, device="cpu", **kw)


@pytest.mark.cpu_kernels
def test_seeded_searches_give_the_same_traces_alone_and_together(fresh_policy):
    policy = fresh_policy()
    alone = [comparable(search.run(q)) for search, q in searches(policy)]
    assert policy.engine.peak_rows <= max(c.mutants for c in CONFIGS) + 1  # a search's beams and its seed sample

    together: list = [None] * len(CONFIGS)

    def run(i, search, q):
        together[i] = comparable(search.run(q))

    threads = [threading.Thread(target=run, args=(i, s, q)) for i, (s, q) in enumerate(searches(policy))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert policy.engine.peak_rows > max(c.mutants for c in CONFIGS) + 1  # they did share a batch
    assert together == alone

    async def gathered():
        return await asyncio.gather(*(search.arun(q) for search, q in searches(policy)))

    assert [comparable(r) for r in asyncio.run(gathered())] == alone


@pytest.mark.cpu_kernels
def test_max_batch_rows_is_honoured_by_queueing(fresh_policy):
    reference = [comparable(search.run(q)) for search, q in searches(fresh_policy())]
    policy = fresh_policy(max_batch_rows=3)

    async def gathered():
        return await asyncio.gather(*(search.arun(q) for search, q in searches(policy)))

    assert [comparable(r) for r in asyncio.run(gathered())] == reference
    assert policy.engine.peak_rows == 3


class HeldAtDecoding:
    """The model, holding every one-token (decoding) forward pass until `released` is set; `decoding` says that
    one is waiting."""

    def __init__(self, model):
        self.model = model
        self.decoding, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *, input_ids, **kwargs):
        if input_ids.shape[1] == 1:
            self.decoding.set()
            self.released.wait(60)
        return self.model(input_ids=input_ids, **kwargs)


def test_a_short_call_leaves_the_batch_without_waiting_for_a_long_one(fresh_policy):
    """The long call's batch is held at its first step until the short call is in, so the short one joins a
    running batch; whether the long one is done is read when the short one finishes, on the engine's thread."""
    policy = fresh_policy()
    long_beams = policy.start([Prompt.of(QUESTIONS[0])] * 2, 200)
    short_beams = policy.start([Prompt.of(QUESTIONS[1])], 200)
    sampling = Sampling(temperature=1.0, top_p=1.0)
    held = policy.engine.model = HeldAtDecoding(policy.model)
    # A vocabulary without EOS keeps every row alive for its whole period.
    eos = policy.engine.eos_ids
    policy.engine.eos_ids = frozenset()
    try:
        slow = policy.engine.submit([b.state for b in long_beams], 150, sampling, 0)
        assert held.decoding.wait(60)
        fast = policy.engine.submit([b.state for b in short_beams], 3, sampling, 1)
        slow_done_when_fast_finished = []
        fast.add_done_callback(lambda _: slow_done_when_fast_finished.append(slow.done()))
        held.released.set()
        assert fast.result(timeout=60).output_tokens == 3
        assert slow_done_when_fast_finished == [False]  # the short call joined the running batch and left it first
        assert slow.result(timeout=120).output_tokens == 300
    finally:
        held.released.set()
        policy.engine.eos_ids = eos


class OutOfMemoryAbove:
    """The model, failing as CUDA does when a batch is too big (no GPU here, so the error is raised on purpose)."""

    def __init__(self, model, rows: int):
        self.model, self.rows, self.failures = model, rows, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *, input_ids, **kwargs):
        if input_ids.shape[1] == 1 and sum(kwargs["rows"].queries) > self.rows:
            self.failures += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.model(input_ids=input_ids, **kwargs)


@pytest.mark.cpu_kernels
def test_out_of_memory_splits_the_batch_instead_of_failing(fresh_policy):
    reference = [comparable(search.run(q)) for search, q in searches(fresh_policy())]
    policy = fresh_policy()
    policy.engine.model = OutOfMemoryAbove(policy.model, rows=4)

    async def gathered():
        return await asyncio.gather(*(search.arun(q) for search, q in searches(policy)))

    assert [comparable(r) for r in asyncio.run(gathered())] == reference
    assert policy.engine.model.failures >= 1 and policy.engine._limit <= 4


def test_a_failing_forward_fails_its_callers_and_the_engine_goes_on(fresh_policy):
    policy = fresh_policy()
    model = policy.engine.model

    def broken(**kwargs):
        raise RuntimeError("device lost")

    broken.device = model.device
    policy.engine.model = broken
    beams = policy.start([Prompt.of(QUESTIONS[0])], 8)
    with pytest.raises(RuntimeError, match="device lost"):
        policy.extend(beams, 4, Sampling(), 0)
    policy.engine.model = model
    search, q = searches(policy)[0]
    assert search.run(q).answer  # the engine serves the next call


def test_cancelling_an_async_call_frees_its_rows(fresh_policy):
    """Decoding is held at its first step until the call is cancelled, so the cancellation lands mid-period."""
    policy = fresh_policy()
    held = policy.engine.model = HeldAtDecoding(policy.model)
    policy.engine.eos_ids = frozenset()
    beams = policy.start([Prompt.of(QUESTIONS[0])] * 3, 450)

    async def main():
        task = asyncio.ensure_future(policy.aextend(beams, 450, Sampling(), 0))
        try:
            assert await asyncio.to_thread(held.decoding.wait, 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            held.released.set()
        started = time.perf_counter()
        while policy.engine._rows or policy.engine._waiting:
            await asyncio.sleep(0.01)
            assert time.perf_counter() - started < 30
        return sum(b.state.cached for b in beams)

    cached = asyncio.run(main())
    assert cached < 3 * 450  # it stopped long before its period was decoded
