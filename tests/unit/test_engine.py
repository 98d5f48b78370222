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

GREEDY = Sampling(temperature=0)
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
    """A policy of its own, batch invariant unless told otherwise: most tests here compare a search alone and
    beside others, which only that mode promises to match."""
    return lambda **kw: HFPolicy.from_pretrained(tiny_llama, device="cpu", **{"batch_invariant": True, **kw})


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


@pytest.mark.cpu_kernels
def test_a_newcomer_takes_a_leavers_slot_in_place_and_decodes_as_alone(fresh_policy):
    """A call that leaves a running batch leaves its slots empty; the next call takes them, its cache copied into
    them, and the batch's own cache is not copied again. Batch invariant, every row still decodes what it does
    alone."""
    sampling = Sampling(temperature=1.0, top_p=1.0)

    def decode(policy, question, rows, steps, seed, then=None):
        beams = policy.start([Prompt.of(question)] * rows, steps)
        future = policy.engine.submit([b.state for b in beams], steps, sampling, seed)
        if then is not None:
            future.add_done_callback(lambda _: then())
        return beams, future

    alone = fresh_policy()
    alone.engine.eos_ids = frozenset()  # every row lives out its whole call
    expected = {}
    for name, (question, rows, steps, seed) in {"long": (QUESTIONS[1], 8, 60, 0), "short": (QUESTIONS[0], 2, 3, 1),
                                                "late": (QUESTIONS[2], 2, 10, 2)}.items():
        beams, future = decode(alone, question, rows, steps, seed)
        future.result(timeout=60)
        expected[name] = [b.response for b in beams], [b.state.cache for b in beams]

    policy = fresh_policy()
    engine = policy.engine
    engine.eos_ids = frozenset()
    caches, regroup = [], engine._regroup

    def watched(joining):  # the batch's cache and its slots after every regroup
        regroup(joining)
        caches.append((engine._slab.layers[0][0] if engine._slab else None, [r is not None for r in engine._slots]))

    engine._regroup = watched
    late = []
    held = engine.model = HeldAtDecoding(policy.model)
    long_beams, long_call = decode(policy, QUESTIONS[1], 8, 60, 0)
    assert held.decoding.wait(60)
    short_beams, short_call = decode(policy, QUESTIONS[0], 2, 3, 1,
                                     then=lambda: late.append(decode(policy, QUESTIONS[2], 2, 10, 2)))
    held.released.set()
    short_call.result(timeout=60)
    long_call.result(timeout=120)
    late_beams, late_call = late[0]
    late_call.result(timeout=60)

    with_short = next(i for i, (_, slots) in enumerate(caches) if len(slots) == 10 and all(slots))
    emptied = next(i for i, (_, slots) in enumerate(caches) if i > with_short and slots.count(False) == 2)
    refilled = next(i for i, (_, slots) in enumerate(caches) if i > emptied and all(slots))
    assert caches[emptied][0] is caches[with_short][0] and caches[refilled][0] is caches[emptied][0]  # no copy
    for name, beams in {"long": long_beams, "short": short_beams, "late": late_beams}.items():
        responses, caches = expected[name]
        assert [b.response for b in beams] == responses
        for beam, cache in zip(beams, caches):  # every key and value each row holds, bitwise
            assert all(torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(beam.state.cache, cache))


def test_batched_steps_skip_empty_slots_and_a_newcomer_fills_one_in_place(fresh_policy):
    """Batched, a leaver's empty slot costs a step nothing: the model is fed the rows only, each writing its own
    slot's column. The next newcomer takes the slot, the batch's cache is not copied, and its rows decode what they
    do alone (to float rounding: batched, a row's numbers depend on its batch)."""
    def decode(policy, question, rows, steps, then=None):
        beams = policy.start([Prompt.of(question)] * rows, steps)
        future = policy.engine.submit([b.state for b in beams], steps, GREEDY, 0)
        if then is not None:
            future.add_done_callback(lambda _: then())
        return beams, future

    alone = fresh_policy(batch_invariant=False)
    alone.engine.eos_ids = frozenset()
    beams, future = decode(alone, QUESTIONS[2], 2, 10)
    future.result(timeout=60)
    expected = [b.response for b in beams], [b.state.cache for b in beams]

    policy = fresh_policy(batch_invariant=False)
    engine = policy.engine
    engine.eos_ids = frozenset()
    steps = []  # per decoding step: rows fed, slots in the batch, the batch's cache

    class Watched(HeldAtDecoding):
        def __call__(self, *, input_ids, **kwargs):
            if input_ids.shape[1] == 1:
                slab = engine._slab.layers[0][0] if engine._slab else None
                steps.append((input_ids.shape[0], len(engine._slots), slab))
            return super().__call__(input_ids=input_ids, **kwargs)

    late = []
    held = engine.model = Watched(policy.model)
    long_beams, long_call = decode(policy, QUESTIONS[1], 4, 60)
    assert held.decoding.wait(60)
    _, short_call = decode(policy, QUESTIONS[0], 2, 3, then=lambda: late.append(decode(policy, QUESTIONS[2], 2, 10)))
    held.released.set()
    short_call.result(timeout=60)
    long_call.result(timeout=120)
    late_beams, late_call = late[0]
    late_call.result(timeout=60)

    holed = [i for i, (fed, slots, _) in enumerate(steps) if fed < slots]
    assert holed and all(steps[i][0] == 4 for i in holed)  # the long call's rows alone, in a batch of more slots
    refilled = next(i for i in range(holed[0], len(steps)) if steps[i][0] == 6)
    assert steps[refilled][2] is steps[holed[0]][2]  # the late call took the empty slots: no copy of the batch
    responses, caches = expected
    assert [b.response for b in late_beams] == responses
    for beam, cache in zip(late_beams, caches):
        assert all(torch.allclose(k, k0, atol=1e-5) and torch.allclose(v, v0, atol=1e-5)
                   for (k, v), (k0, v0) in zip(beam.state.cache, cache))


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


@pytest.mark.parametrize("invariant", [pytest.param(True, id="batch-invariant", marks=pytest.mark.cpu_kernels),
                                       pytest.param(False, id="batched")])
def test_out_of_memory_splits_the_batch_instead_of_failing(fresh_policy, invariant):
    """Batch invariant, the split batches decode what each search decodes alone; batched (the CUDA default, with
    empty slots that steps skip), every search still finishes with an answer."""
    reference = [comparable(search.run(q)) for search, q in searches(fresh_policy(batch_invariant=invariant))]
    policy = fresh_policy(batch_invariant=invariant)
    policy.engine.model = OutOfMemoryAbove(policy.model, rows=4)

    async def gathered():
        return await asyncio.gather(*(search.arun(q) for search, q in searches(policy)))

    results = [comparable(r) for r in asyncio.run(gathered())]
    if invariant:
        assert results == reference
    else:  # a row's numbers may move by float rounding beside others: the same searches, each answered
        assert len(results) == len(reference) and all(r["answer"] for r in results)
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


class Held:
    """The model, holding the first forward pass of a kind ("step": one token a row; "prefill": more) until
    `released` is set, and logging every pass's kind."""

    def __init__(self, model, kind: str):
        self.model, self.kind, self.passes, self.rows = model, kind, [], []  # each pass's kind and real rows
        self.waiting, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *, input_ids, **kwargs):
        kind = "step" if input_ids.shape[1] == 1 else "prefill"
        self.passes.append(kind)
        self.rows.append(sum(1 for n in kwargs["rows"].queries if n))
        if kind == self.kind and not self.waiting.is_set():
            self.waiting.set()
            self.released.wait(60)
        return self.model(input_ids=input_ids, **kwargs)


LONG = " ".join(["Give three tips for writing a clear email."] * 8)  # about 100 tokens of the tiny tokenizer


def idle(engine, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while engine._rows or engine._waiting or engine._prefilling:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_long_prompt_is_encoded_a_chunk_at_a_time_between_the_steps_of_the_running_rows(fresh_policy,
                                                                                         monkeypatch):
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    policy = fresh_policy()
    policy.engine.eos_ids = frozenset()
    held = policy.engine.model = Held(policy.model, "step")
    running = policy.start([Prompt.of("Hi")], 64)
    newcomer = policy.start([Prompt.of(LONG)], 64)
    chunks = -(-(len(newcomer[0].state.ids) - 1) // 8)
    try:
        decoding = policy.engine.submit([running[0].state], 40, GREEDY, 0)
        assert held.waiting.wait(60)
        joining = policy.engine.submit([newcomer[0].state], 1, GREEDY, 1)
        held.passes.clear()
        held.released.set()
        assert joining.result(timeout=60).output_tokens == 1 and decoding.result(timeout=60).output_tokens == 40
    finally:
        held.released.set()
    assert chunks >= 8 and held.passes.count("prefill") == chunks
    first, last = held.passes.index("prefill"), len(held.passes) - held.passes[::-1].index("prefill") - 1
    assert held.passes[first:last].count("step") >= chunks - 1  # the running row decoded between the chunks
    state = newcomer[0].state  # and the chunks add up to the prompt's cache, position for position
    with torch.inference_mode():
        out = policy.model(input_ids=torch.tensor([state.ids[:-2]]), use_cache=True)
    for (k, v), layer in zip(state.cache, out.past_key_values.layers):
        torch.testing.assert_close(k[:, : len(state.ids) - 2], layer.keys[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(v[:, : len(state.ids) - 2], layer.values[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_a_call_cancelled_or_out_of_time_stops_its_prompt_at_the_next_chunk(fresh_policy, monkeypatch, how):
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    policy = fresh_policy()
    held = policy.engine.model = Held(policy.model, "prefill")
    beam = policy.start([Prompt.of(LONG)], 64)[0]
    deadline = time.monotonic() + 0.5 if how == "deadline" else None
    try:
        future = policy.engine.submit([beam.state], 10, GREEDY, 0, deadline)
        assert held.waiting.wait(60)  # the first chunk is being encoded
        if how == "cancel":
            policy.engine.cancel(future)
        else:
            time.sleep(max(0.0, deadline - time.monotonic()) + 0.01)
        held.released.set()
        assert future.result(timeout=60).output_tokens == 0
    finally:
        held.released.set()
    assert idle(policy.engine) and held.passes == ["prefill"]  # no chunk after the first, no step
    assert beam.state.cached == 0 and beam.state.cache is None  # nobody continues it: its memory is freed


def test_a_deadline_ends_a_call_within_one_step(fresh_policy):
    policy = fresh_policy()
    policy.engine.eos_ids = frozenset()
    beams = policy.start([Prompt.of(QUESTIONS[0])] * 2, 400)
    past = policy.engine.submit([b.state for b in beams], 300, GREEDY, 0, time.monotonic() - 1)
    assert past.result(timeout=60).output_tokens == 0 and all(not b.state.response_ids for b in beams)
    held = policy.engine.model = Held(policy.model, "step")
    deadline = time.monotonic() + 0.5
    try:
        future = policy.engine.submit([b.state for b in beams], 300, GREEDY, 0, deadline)
        assert held.waiting.wait(60)
        time.sleep(max(0.0, deadline - time.monotonic()) + 0.01)
        held.released.set()
        assert future.result(timeout=60).output_tokens == 2  # the held step's token for each row, then out
    finally:
        held.released.set()
    assert [len(b.state.response_ids) for b in beams] == [1, 1]


def test_a_short_prompt_does_not_wait_out_a_long_ones_chunks(fresh_policy, monkeypatch):
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    policy = fresh_policy()
    held = policy.engine.model = Held(policy.model, "prefill")
    long_beam, short_beam = policy.start([Prompt.of(LONG)], 64)[0], policy.start([Prompt.of("Hi")], 64)[0]
    try:
        slow = policy.engine.submit([long_beam.state], 1, GREEDY, 0)
        assert held.waiting.wait(60)  # the long prompt's first chunk is being encoded
        fast = policy.engine.submit([short_beam.state], 1, GREEDY, 1)
        fast_done_at: list[int] = []
        fast.add_done_callback(lambda _: fast_done_at.append(long_beam.state.cached))
        held.released.set()
        fast.result(timeout=60), slow.result(timeout=60)
    finally:
        held.released.set()
    # the two took turns, a chunk each: the short one was done before the long one was half encoded
    assert fast_done_at and fast_done_at[0] <= len(long_beam.state.ids) // 2


def test_a_calls_rows_join_the_batch_together_once_all_are_encoded(fresh_policy, monkeypatch):
    """Each joining copies the batch's cache: the three rows of one call join at one step, not one by one."""
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    policy = fresh_policy()
    policy.engine.eos_ids = frozenset()
    held = policy.engine.model = Held(policy.model, "none")
    beams = policy.start([Prompt.of(LONG), Prompt.of(LONG + " Twice."), Prompt.of("Hi")], 64)
    assert policy.engine.submit([b.state for b in beams], 3, GREEDY, 0).result(timeout=60).output_tokens == 9
    steps = [n for kind, n in zip(held.passes, held.rows) if kind == "step"]
    assert steps == [3, 3, 3] and held.passes.index("step") > len(held.passes) - 4  # after every chunk


def fed_by_prefill(monkeypatch) -> list[list[int]]:
    """Every feed the engine's prefill passes encode, pass by pass."""
    import darwin_chains.policies.engine as engine_module

    passes, encode = [], engine_module.forward_ragged

    def counted(model, feeds, caches, *args, **kwargs):
        passes.append([len(f) for f in feeds])
        return encode(model, feeds, caches, *args, **kwargs)

    monkeypatch.setattr(engine_module, "forward_ragged", counted)
    return passes


@pytest.mark.cpu_kernels
def test_copies_of_one_prompt_in_a_call_are_encoded_once_and_decode_as_if_alone(fresh_policy, monkeypatch):
    """Best-of-N's rows: one prompt, encoded once for all five, and each row's cache is bitwise what it would
    have encoded alone. Another call's copy of it is encoded again: calls never share."""
    policy = fresh_policy()
    alone = policy.start([Prompt.of(LONG)], 4)[0]
    policy.engine.submit([alone.state], 4, GREEDY, 0).result(timeout=60)
    running = policy.start([Prompt.of("Hi")], 2)[0]
    held = policy.engine.model = HeldAtDecoding(policy.model)  # both calls arrive while a step is held
    policy.engine.submit([running.state], 2, GREEDY, 0)
    assert held.decoding.wait(60)
    passes = fed_by_prefill(monkeypatch)
    beams = policy.start([Prompt.of(LONG)] * 5, 4)
    future = policy.engine.submit([b.state for b in beams], 4, GREEDY, 0)
    other = policy.start([Prompt.of(LONG)], 4)[0]
    other_future = policy.engine.submit([other.state], 4, GREEDY, 0)
    held.released.set()
    future.result(timeout=60), other_future.result(timeout=60)
    prompt = len(alone.state.prompt_ids) - 1  # the last prompt token is fed by the first decoding step
    assert sorted(n for feeds in passes for n in feeds) == [prompt, prompt]  # the five rows once, the other once
    for beam in beams + [other]:
        assert beam.response == alone.response
        assert all(torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(beam.state.cache,
                                                                                         alone.state.cache))


def test_variants_that_share_a_start_encode_it_once_and_their_own_ends_apart(fresh_policy, monkeypatch):
    """A search's variants of one instruction: the start they share is encoded once, then each its own end, to
    float rounding what each encodes alone. A variant that starts otherwise is encoded whole, apart."""
    policy = fresh_policy()
    prompts = [Prompt.of(LONG + " Answer step by step."), Prompt.of(LONG + " Be concise."),
               Prompt.of(LONG + " Include an example."), Prompt.of("Please answer helpfully. " + LONG)]
    alone = []
    for prompt in prompts:
        beam = policy.start([prompt], 3)[0]
        policy.engine.submit([beam.state], 3, GREEDY, 0).result(timeout=60)
        alone.append(beam)
    passes = fed_by_prefill(monkeypatch)
    beams = policy.start(prompts, 3)
    policy.engine.submit([b.state for b in beams], 3, GREEDY, 0).result(timeout=60)
    lengths = [len(b.state.prompt_ids) - 1 for b in beams]
    shared = next(n for feeds in passes for n in feeds if n not in lengths)
    assert shared >= 64 and sum(map(sum, passes)) == shared + sum(n - shared for n in lengths[:3]) + lengths[3]
    for beam, single in zip(beams, alone):
        for (k, v), (k0, v0) in zip(beam.state.cache, single.state.cache):
            torch.testing.assert_close(k, k0, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(v, v0, rtol=1e-4, atol=1e-5)


def test_a_long_prompts_chunks_write_one_buffer_in_place(fresh_policy, monkeypatch):
    """After its first chunk a long prompt's cache is one buffer made for the whole prompt: no chunk copies it."""
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    policy = fresh_policy()
    beam = policy.start([Prompt.of(LONG)], 64)[0]
    storages = []

    class Watched(Held):
        def __call__(self, *, input_ids, **kwargs):
            if beam.state.cache is not None:
                storages.append(beam.state.cache[0][0].untyped_storage().data_ptr())
            return super().__call__(input_ids=input_ids, **kwargs)

    policy.engine.model = Watched(policy.model, "none")
    assert policy.engine.submit([beam.state], 1, GREEDY, 0).result(timeout=60).output_tokens == 1
    chunks = -(-(len(beam.state.ids) - 2) // 8)
    assert chunks >= 8 and len(storages) == chunks - 1  # each chunk after the first (the step reads the batch's)
    assert len(set(storages)) == 1  # found the cache in one place


@pytest.mark.cpu_kernels
def test_a_long_seeded_prompt_decodes_the_same_alone_and_beside_others(fresh_policy, monkeypatch):
    import darwin_chains.policies.engine as engine_module

    monkeypatch.setattr(engine_module, "PREFILL_CHUNK", 8)
    sampling = Sampling(temperature=0.8, top_p=0.9)

    def decode(policy, others: bool) -> list[int]:
        beam = policy.start([Prompt.of(LONG)], 64)[0]
        if others:
            busy = policy.start([Prompt.of(LONG + " Also."), Prompt.of("Hi")], 64)
            neighbours = policy.engine.submit([b.state for b in busy], 20, sampling, 5)
        policy.engine.submit([beam.state], 20, sampling, 7).result(timeout=60)
        if others:
            neighbours.result(timeout=60)
        return beam.state.response_ids

    policy = fresh_policy()
    policy.engine.eos_ids = frozenset()
    assert decode(policy, others=False) == decode(policy, others=True)


def test_batched_attention_matches_row_attention_on_every_row():
    """One SDPA call masked per row computes what the row-by-row loop does, to float rounding, GQA included."""
    from darwin_chains.modeling.attention import Rows, row_attention

    torch.manual_seed(0)
    batch, heads, kv_heads, width, dim = 5, 6, 2, 23, 8
    query = torch.randn(batch, heads, 1, dim)
    key, value = torch.randn(batch, kv_heads, width, dim), torch.randn(batch, kv_heads, width, dim)
    spans = [(23 - n, 23) for n in (1, 7, 23, 12, 3)]  # left-padded rows of different lengths
    looped, _ = row_attention(None, query, key, value, None, scaling=dim ** -0.5, rows=Rows(spans, [1] * batch))
    batched, _ = row_attention(None, query, key, value, None, scaling=dim ** -0.5,
                               rows=Rows(spans, [1] * batch, batched=True))
    assert batched.shape == looped.shape == (batch, 1, heads, dim)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_batched_attention_reads_runs_of_short_rows_apart_and_computes_the_same():
    """Rows left-padded to a long one: a run of short rows gets a call over its own columns only, and every row
    still gets what the row-by-row loop computes."""
    from darwin_chains.modeling.attention import Rows, row_attention

    torch.manual_seed(0)
    heads, kv_heads, width, dim = 6, 2, 600, 8
    lengths = [40, 35, 50, 42, 600, 580, 590, 300, 310, 45]  # three searches' beams, one a straggler apart
    query = torch.randn(len(lengths), heads, 1, dim)
    key, value = torch.randn(len(lengths), kv_heads, width, dim), torch.randn(len(lengths), kv_heads, width, dim)
    spans = [(width - n, width) for n in lengths]
    rows = Rows(spans, [1] * len(lengths), batched=True)
    assert [(first, last) for first, last, _ in rows.runs] == [(0, 4), (4, 7), (7, 9), (9, 10)]
    assert all(start == min(s for s, _ in spans[first:last]) for first, last, start in rows.runs)
    looped, _ = row_attention(None, query, key, value, None, scaling=dim ** -0.5, rows=Rows(spans, [1] * len(lengths)))
    batched, _ = row_attention(None, query, key, value, None, scaling=dim ** -0.5, rows=rows)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)
    assert Rows(spans[:4], [1] * 4, batched=True).runs == [(0, 4, width - 50)]  # alike rows: one call


def test_batched_attention_over_slots_with_holes_reads_each_rows_own_slot():
    """Rows that sit in a batch with empty slots (`slots`): a run never spans a hole, and every row attends its
    own slot's keys, as the row-by-row loop does over the rows alone."""
    from darwin_chains.modeling.attention import Rows, row_attention

    torch.manual_seed(0)
    heads, kv_heads, width, dim = 6, 2, 60, 8
    slots, lengths = [0, 1, 3, 4, 5, 8], [40, 42, 41, 39, 60, 20]  # slots 2, 6 and 7 are empty
    query = torch.randn(len(slots), heads, 1, dim)
    key, value = torch.randn(9, kv_heads, width, dim), torch.randn(9, kv_heads, width, dim)
    spans = [(width - n, width) for n in lengths]
    rows = Rows(spans, [1] * len(slots), batched=True, slots=slots)
    assert all(slots[last - 1] - slots[first] == last - 1 - first for first, last, _ in rows.runs)
    assert [(first, last) for first, last, _ in rows.runs][0] == (0, 2)  # alike rows 0 and 1 share a call
    batched, _ = row_attention(None, query, key, value, None, scaling=dim ** -0.5, rows=rows)
    looped, _ = row_attention(None, query, key[slots], value[slots], None, scaling=dim ** -0.5,
                              rows=Rows(spans, [1] * len(slots)))
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)


def test_batch_invariance_is_a_switch_off_by_default(tiny_llama, monkeypatch):
    from darwin_chains.errors import ConfigError

    monkeypatch.delenv("DARWIN_CHAINS_BATCH_INVARIANT", raising=False)
    assert not HFPolicy.from_pretrained(tiny_llama, device="cpu").batch_invariant
    assert HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=True).batch_invariant
    monkeypatch.setenv("DARWIN_CHAINS_BATCH_INVARIANT", "1")  # every face: CLI, serve, the adapters
    assert HFPolicy.from_pretrained(tiny_llama, device="cpu").batch_invariant
    assert not HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=False).batch_invariant
    monkeypatch.setenv("DARWIN_CHAINS_BATCH_INVARIANT", "maybe")
    with pytest.raises(ConfigError, match="DARWIN_CHAINS_BATCH_INVARIANT='maybe' is not a switch; use 1"):
        HFPolicy.from_pretrained(tiny_llama, device="cpu")


@pytest.mark.cpu_kernels
def test_by_default_a_seeded_search_alone_is_reproducible(fresh_policy):
    """The default (batched) mode promises a seeded search the same answer and trace run after run, alone."""
    policy = fresh_policy(batch_invariant=False)
    first = [comparable(search.run(q)) for search, q in searches(policy)]
    again = [comparable(search.run(q)) for search, q in searches(fresh_policy(batch_invariant=False))]
    assert first == again and all(r["answer"] for r in first)


def test_without_batch_invariance_steps_are_not_padded_and_decode_the_same_greedy_text(fresh_policy):
    invariant, batched = fresh_policy(), fresh_policy(batch_invariant=False)
    assert invariant.batch_invariant and not batched.batch_invariant
    texts, widths = {}, {}
    for name, policy in (("invariant", invariant), ("batched", batched)):
        seen = widths[name] = []
        forward = policy.model.forward

        def spy(*args, **kwargs):
            ids = kwargs.get("input_ids")
            if ids is not None and ids.shape[1] == 1:  # a decoding step
                seen.append(ids.shape[0])
            return forward(*args, **kwargs)

        policy.model.forward = spy
        beams = policy.start([Prompt.of(QUESTIONS[0])], 12)
        policy.extend(beams, 12, GREEDY, seed=0)
        texts[name] = beams[0].response
    assert set(widths["invariant"]) == {4} and set(widths["batched"]) == {1}  # a lone row: padded to 4, or not
    assert texts["batched"] == texts["invariant"] and texts["batched"]
