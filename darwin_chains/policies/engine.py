"""One decoding thread per model: concurrent `extend` calls become rows of one batch, step by step.

Searches running at once (threads, asyncio tasks, serve's requests) each ask for a period of tokens for their
beams. Taking turns would decode 5 rows while the hardware could decode 40, so every beam is a row of one running
batch instead: it joins at the next step after its call arrives, leaves as soon as its period is decoded or it
ends, and the call returns when its last row has left. A leaver's slot stays empty for the next newcomer, so the
batch's cache is copied whole only when it must grow; batched, an empty slot costs a step nothing (the step feeds
the rows only), so a new batch keeps slots for the rows on their way. Rows beyond `max_batch_rows` (or
`max_batch_tokens` of cache) wait for a place.

A row carries everything that makes it itself: its cache, its sampling settings, its own random generator and its
stop conditions. A step's rows share attention calls; batch invariant (`HFPolicy(batch_invariant=True)`),
attention runs row by row in steps of at least `MIN_ROWS` rows (`attention.py`), so a seeded search decodes the
same tokens alone or beside any others. In float32 on CPU the linear layers use weights packed once for oneDNN,
whose numbers for a row do not depend on how many share the product; a step of one or two rows (batched mode
only) goes weight-first (`products.py`).

A newcomer's prompt is encoded `PREFILL_CHUNK` tokens at a time, one chunk between two decoding steps, so a long
prompt neither holds up the rows already decoding nor needs memory that grows with its square. A call's rows that
start alike (Best-of-N's copies of one prompt, a search's variants of one instruction) encode what they share
once. Between chunks and at every step a row leaves when its call was cancelled or its deadline passed: a client
that left, or a search out of time, stops within one step or chunk.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..config import Sampling
from ..errors import PolicyError
from ..protocols import Usage
from ..modeling.attention import MIN_ROWS, Rows
from ..modeling.batching import Slab, State, extract, forward_ragged, stack
from ..modeling.products import packed_products, use_packed_products
from ..modeling.threads import release
from .grammar import mask
from .sampling import sample

log = logging.getLogger(__name__)

IDLE_SECONDS = 2.0  # the thread ends when idle this long, and starts again with the next call
SPARE_COLUMNS = 64  # room the batch's cache is made with, so steps write in place (batching.Slab)
# Prompt tokens encoded between two decoding steps, all newcomers together (whole chunks, at least one): about a
# second of a 135M model's time on one CPU thread at 2k tokens of context, and attention scores of a few hundred
# MB at 8k. A newcomer's chunks start at fixed offsets of its own, whoever shares the pass, so its numbers do not
# depend on the others.
PREFILL_CHUNK = 256
# Prompt tokens that rows of one call must save by encoding a start they share once (`_units`): a pass of
# its own costs, on top of its tokens, reading every weight once, about what 30 to 60 tokens cost a CPU.
SHARED_TOKENS = 64


@dataclass(eq=False)
class Row:
    """One beam's place in the batch: what it still has to decode and how."""

    state: State
    steps: int
    sampling: Sampling
    generator: Any
    job: Job
    buffer: Slab | None = None  # a long prompt's own cache while it is encoded, a chunk at a time, in place


@dataclass(eq=False)
class Job:
    """One `extend` call: its rows, what they spent, and the future its caller waits on."""

    rows: list[Row] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    future: Future = field(default_factory=Future)
    left: int = 0
    cancelled: bool = False
    deadline: float | None = None  # time.monotonic() past which its rows stop decoding

    def over(self, now: float) -> bool:
        """Whether its rows should leave now: the caller gave up or ran out of time."""
        return self.cancelled or (self.deadline is not None and now >= self.deadline)


_ENGINES: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for engine in list(_ENGINES):
        engine.close()


async def wait(future: Future) -> Usage:
    """Await a call's future from asyncio. Unlike `asyncio.wrap_future`, a result that arrives as the waiting task
    is cancelled (a client leaving, Ctrl-C) is dropped quietly instead of failing in the loop's callback."""
    import asyncio

    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def settle(done: Future) -> None:
        if waiter.done():
            return
        if done.cancelled():
            waiter.cancel()
        elif done.exception() is not None:
            waiter.set_exception(done.exception())
        else:
            waiter.set_result(done.result())

    def arrived(done: Future) -> None:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(settle, done)
            except RuntimeError:  # the loop closed in between: nobody waits any more
                pass

    future.add_done_callback(arrived)
    return await waiter


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a call seeded `seed`: each beam has its own random stream."""
    return (seed * 0x9E3779B1 + index * 0x85EBCA77 + 1) % (2**63 - 1)


class Engine:
    """The batch and the thread that decodes it. `submit` returns a future of the call's Usage."""

    def __init__(self, model: Any, *, eos_ids: frozenset[int], pad_id: int, max_context: int | None,
                 max_batch_rows: int = 64, max_batch_tokens: int | None = None, name: str = "model",
                 batch_invariant: bool = True):
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1 (or None), got {max_batch_tokens}")
        self.model, self.eos_ids, self.pad_id, self.max_context = model, eos_ids, pad_id, max_context
        self.max_batch_rows, self.max_batch_tokens, self.name = max_batch_rows, max_batch_tokens, name
        self.peak_rows = 0  # the most rows decoded in one step, for tests and benchmarks
        # Batch invariant: rows attend one at a time, padded to MIN_ROWS (attention.py); else in shared calls.
        self.batch_invariant = batch_invariant
        # In float32 on CPU, the linear layers use weights packed for oneDNN, or weight-first (products.py).
        self._packed_products = use_packed_products(model)
        self._waiting: deque[Row] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._slots: list[Row | None] = []  # the running batch, in cache order; None: an empty slot (a filler)
        self._prefilling: list[Row] = []  # admitted, their prompts being encoded a chunk at a time
        self._slab: Slab | None = None  # the batch's cache: per layer [slots, kv heads, columns, head dim]
        self._limit = max_batch_rows  # lowered after an out-of-memory error
        self._closing = False
        _ENGINES.add(self)

    @property
    def _rows(self) -> list[Row]:
        """The rows decoding now, in cache order."""
        return [r for r in self._slots if r is not None]

    # -- the callers' side ---------------------------------------------------------------------------------------

    def submit(self, states: list[State], steps: int, sampling: Sampling, seed: int,
               deadline: float | None = None) -> Future:
        """Decode up to `steps` tokens for each state; rows stop early at `deadline` (a `time.monotonic()`)."""
        import torch

        release()  # the caller waits now: its own torch work's OpenMP workers would slow the engine's (threads.py)
        job = Job(deadline=deadline)
        device = "cuda" if self.model.device.type == "cuda" else "cpu"
        for i, state in enumerate(states):
            generator = torch.Generator(device=device).manual_seed(row_seed(seed, i))
            job.rows.append(Row(state, steps, sampling, generator, job))
        job.left = len(job.rows)
        pending = [len(s.ids) - s.cached for s in states]
        if min(pending) < 1:
            job.future.set_exception(PolicyError(f"{self.name}: a beam has no token to feed; was it adopted from "
                                                 "a finished beam?"))
            return job.future
        carried = sum(1 for s, n in zip(states, pending) if n == 1 and s.response_ids)
        job.usage = Usage(input_tokens=sum(pending) - carried, requests=1)
        with self._wake:
            if self._closing:
                raise PolicyError(f"{self.name}: the engine was closed (the process is exiting)")
            self._waiting.extend(job.rows)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"darwin-engine-{self.name}", daemon=True)
                self._thread.start()
            self._wake.notify()
        return job.future

    def cancel(self, future: Future) -> None:
        """Drop a call's rows at the next step or prompt chunk (its beams are left as they are)."""
        with self._wake:
            for row in list(self._waiting) + self._prefilling + self._rows:
                if row.job.future is future:
                    row.job.cancelled = True

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current step; calls still in the batch fail. Run at interpreter exit, since a
        thread killed inside torch aborts the process."""
        with self._wake:
            self._closing = True
            thread = self._thread
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the decoding thread -------------------------------------------------------------------------------------

    def _loop(self) -> None:
        import torch

        with torch.inference_mode(), packed_products(self._packed_products):
            while True:
                with self._wake:
                    if self._closing:
                        self._fail(PolicyError(f"{self.name}: the process is exiting"), list(self._waiting))
                        self._waiting.clear()
                        self._thread = None
                        return
                    if not self._rows and not self._waiting and not self._prefilling:
                        release()  # idle, its workers would slow other threads' torch work (threads.py)
                        self._wake.wait(IDLE_SECONDS)
                        if not self._waiting:
                            self._thread = None
                            return
                    self._prefilling += self._admit()
                ready: list[Row] = []
                try:
                    ready = self._prefill()
                    self._regroup(ready)
                    if self._rows:
                        self._step()
                except Exception as exc:  # noqa: BLE001 - every caller in the batch hears of it
                    outside = self._prefilling + [r for r in ready if r not in self._rows]  # not decoding yet
                    self._prefilling = []
                    for r in outside:  # a cache given up to a batch that was never made: encode it again
                        if r.state.cache is None:
                            r.state.cached = 0
                    if isinstance(exc, torch.cuda.OutOfMemoryError) and len(self._rows) + len(outside) > 1:
                        self._shed(outside)
                        continue
                    self._fail(exc, outside)

    def _admit(self) -> list[Row]:
        """Waiting rows that fit (under the lock): rows and cache tokens within the limits, one row at least."""
        joining, rows, now = [], len(self._rows) + len(self._prefilling), time.monotonic()
        tokens = sum(r.state.cached + 1 for r in self._rows) + sum(len(r.state.ids) for r in self._prefilling)
        while self._waiting:
            row = self._waiting[0]
            if row.job.over(now):
                self._waiting.popleft()
                self._leave(row)
                continue
            size = len(row.state.ids)
            over = rows + 1 > self._limit or (self.max_batch_tokens is not None and tokens + size > self.max_batch_tokens)
            if over and rows:
                break
            joining.append(self._waiting.popleft())
            rows, tokens = rows + 1, tokens + size
        return joining

    def _regroup(self, joining: list[Row]) -> None:
        """The batch for the next step: leavers out (each keeps its own cache), newcomers in.

        A leaver's slot is left empty and a newcomer takes an empty slot in place, so only their own caches are
        copied. The whole batch is copied into a new cache only when it must: newcomers that do not fit (no slot,
        or a cache wider than the batch's), no room left for the next column, or, batch invariant, more empty slots
        than a quarter of the rows, whose steps would cost more than the copy. Batched, an empty slot costs a step
        nothing, so a new batch keeps slots for the rows on their way (`_fillers`)."""
        slots, slab, now = self._slots, self._slab, time.monotonic()
        leaving = [i for i, r in enumerate(slots)
                   if r is not None and (r.steps <= 0 or r.state.finished or r.job.over(now))]
        if not joining and not leaving and slab is not None and slab.room:
            return
        live = len(self._rows) - len(leaving) + len(joining)
        for i in leaving:
            r = slots[i]
            if not r.state.finished and slab is not None:
                if r.job.over(now):  # nobody continues it: drop the cache rather than copy it (a later call
                    r.state.cache, r.state.cached = None, 0  # would encode the beam again)
                else:  # the batch ends: its rows may keep views of it, as nothing else writes it again
                    r.state.cache = extract(slab.layers, i, slab.width - r.state.cached, slab.width, copy=bool(live))
            slots[i] = None
            self._leave(r)
        if not live:
            self._slots, self._slab = [], None
            return
        empty = [i for i, r in enumerate(slots) if r is None]
        holes = len(empty) - len(joining)  # empty slots left once the newcomers have taken theirs
        if (slab is not None and slab.room and 0 <= holes and (not self.batch_invariant or holes <= live // 4)
                and all(r.state.cached <= slab.width for r in joining)):
            for r, i in zip(joining, empty):  # left-padded like the rest: its columns end at the batch's last
                n = r.state.cached
                for layer, (keys, values) in enumerate(slab.layers):
                    # what a run over this slot reads before the row's own columns: zeros (masked keys must be
                    # finite numbers, and batched steps write no column of an empty slot)
                    keys[i, :, : slab.width - n], values[i, :, : slab.width - n] = 0, 0
                    if n:
                        k, v = r.state.cache[layer]
                        keys[i, :, slab.width - n : slab.width], values[i, :, slab.width - n : slab.width] = k, v
                r.state.cache = None
                slots[i] = r
        else:
            keep = [i for i, r in enumerate(slots) if r is not None]
            rows = [slots[i] for i in keep] + joining
            # Slots for the rows on their way (being encoded, waiting) and for those away (a search's beams being
            # scored), whose empty slots there were, up to as many as the rows: a later newcomer then needs no copy.
            coming = len(self._prefilling) + len(self._waiting)
            fillers = self._fillers(len(rows), coming + min(max(holes, 0), len(rows)))
            width = max(r.state.cached for r in rows)
            if fillers and not self.batch_invariant:  # wide enough for the rows on their way too, within reason
                width = max([width] + [n for r in self._prefilling if (n := len(r.state.ids) - 1) <= 2 * width])
            caches = [None if r.state.cache is None else list(r.state.cache) for r in joining]
            for r in joining:  # a row's cache moves into the batch, layer by layer, and is copied out when it leaves
                r.state.cache = None
            layers = stack(slab.layers if slab else None, slab.width if slab else 0, keep, caches, width, fillers,
                           SPARE_COLUMNS, release=True)
            self._slots = rows + [None] * fillers
            self._slab = Slab(layers, width) if layers is not None else None
        self.peak_rows = max(self.peak_rows, live)

    def _prefill(self) -> list[Row]:
        """Encode the next chunk of what each newcomer has not encoded yet (a prompt, an adopted response), all but
        its last token; return the newcomers that are ready to decode. A row whose call is over leaves and drops what
        it encoded (nobody continues it)."""
        now, pending, ready = time.monotonic(), [], []
        for r in self._prefilling:
            if r.job.over(now):
                r.state.cache, r.state.cached, r.buffer = None, 0, None
                self._leave(r)
            else:
                (pending if len(r.state.ids) - r.state.cached > 1 else ready).append(r)
        chosen, fed = [], 0
        for rows, feed in _units(pending):  # whole chunks while they fit in a chunk's worth; a long prompt's alone
            if chosen and (rows[0].buffer is not None or fed + len(feed) > PREFILL_CHUNK):
                break
            chosen.append((rows, feed))
            fed += len(feed)
            if rows[0].buffer is not None:
                break
        encoding = [r for rows, _ in chosen for r in rows]
        if chosen and chosen[0][0][0].buffer is not None:
            self._encode_in_place(chosen[0][0][0], chosen[0][1])
        elif chosen:
            states = [rows[0].state for rows, _ in chosen]
            caches, _ = forward_ragged(self.model, [feed for _, feed in chosen],
                                       [s.cache if s.cached else None for s in states], self.pad_id, logits_to_keep=1)
            for (rows, feed), cache in zip(chosen, caches):
                for r in rows:  # one cache for a unit's rows: nothing writes it, each row copies it when it joins
                    r.state.cache, r.state.cached = cache, r.state.cached + len(feed)
                row = rows[0]
                if len(rows) == 1 and (left := len(row.state.ids) - 1 - row.state.cached) > 0:  # more chunks: room
                    row.buffer = Slab(stack(None, 0, [], [list(cache)], row.state.cached, spare=left, release=True),
                                      row.state.cached)  # for all of them
                    row.state.cache = _row_view(row.buffer)
        for r in encoding:
            if len(r.state.ids) - r.state.cached == 1:
                r.buffer = None  # its cache (a view of the buffer until now) is copied into the batch on joining
                ready.append(r)
        # Round robin: the newcomers that waited go first next time, so a short prompt never waits out a long one.
        self._prefilling = [r for r in pending if r not in encoding] + [r for r in encoding if r not in ready]
        # A call's rows join the batch together: each joining copies the batch's whole cache once.
        waiting = {r.job for r in self._prefilling}
        self._prefilling += [r for r in ready if r.job in waiting]
        return [r for r in ready if r.job not in waiting]

    def _encode_in_place(self, row: Row, feed: list[int]) -> None:
        """The next chunk of a long prompt, written into the row's own buffer: the cache is never copied, so a
        prompt costs its cache and one chunk's attention, whatever its length."""
        import torch

        buffer, device = row.buffer, self.model.device
        start = buffer.width
        self.model(input_ids=torch.tensor([feed], device=device),
                   position_ids=torch.arange(start, start + len(feed), device=device)[None], cache=buffer.cache(),
                   use_cache=True, logits_to_keep=1, rows=Rows([(0, start + len(feed))], [len(feed)]))
        buffer.width += len(feed)
        row.state.cache, row.state.cached = _row_view(buffer), buffer.width

    def _step(self) -> None:
        """One token for every row: one forward pass, then each row samples with its own settings and generator."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        slots, slab = self._slots, self._slab
        rows = [r for r in slots if r is not None]
        width = slab.width if slab is not None else 0
        # Batched, an empty slot decodes nothing: the step feeds the rows only and writes their slots' columns.
        # Batch invariant, it decodes a padding token over no keys, as the rows need MIN_ROWS to keep their numbers.
        taken = ([i for i, r in enumerate(slots) if r is not None]
                 if not self.batch_invariant and slab is not None and len(rows) < len(slots) else None)
        fed = slots if taken is None else rows
        input_ids = torch.tensor([[r.state.ids[-1] if r else self.pad_id] for r in fed], device=device)
        positions = torch.tensor([[r.state.cached if r else 0] for r in fed], device=device)
        empty = (width, width + 1) if not self.batch_invariant else (0, 0)  # a padding row's keys: its own, or none
        spans = [(width - r.state.cached, width + 1) if r else empty for r in fed]
        index = None if taken is None else torch.tensor(taken, device=device)
        cache = DynamicCache() if slab is None else slab.cache(index)
        out = self.model(input_ids=input_ids, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1,
                         rows=Rows(spans, [int(r is not None) for r in fed], batched=not self.batch_invariant,
                                   slots=taken))
        if slab is not None:
            slab.width += 1
        else:  # nothing was cached yet (one-token prompts): the next regroup makes room
            self._slab = Slab([(layer.keys, layer.values) for layer in cache.layers], 1)
        logits = out.logits[:, -1, :]
        if len(rows) < len(fed):
            logits = logits[[i for i, r in enumerate(fed) if r is not None]]
        constrained = [(i, r.state.constraint, len(r.state.response_ids)) for i, r in enumerate(rows)
                       if r.state.constraint is not None]
        if constrained:  # structured output: only what the row's grammar allows next
            logits = logits.float()
            mask(constrained, logits)
        tokens = [0] * len(rows)
        for settings, members in _by_sampling(rows).items():  # rows sampled alike share the vocabulary's passes
            picked = sample(logits[members] if len(members) < len(logits) else logits, settings,
                            [rows[i].generator for i in members])
            for i, token in zip(members, picked.tolist()):
                tokens[i] = token
        for row, token in zip(rows, tokens):
            state = row.state
            matcher = state.constraint.matcher if state.constraint is not None else None
            if matcher is not None and not matcher.consume_token(token):
                raise PolicyError(f"{self.name}: the grammar refused a token it allowed: {matcher.get_error()}")
            state.cached += 1
            row.steps -= 1
            row.job.usage.output_tokens += 1
            if token in self.eos_ids:
                state.finished = True
            else:
                state.response_ids.append(token)
                if self.max_context and len(state.ids) >= self.max_context:
                    state.finished, state.finish_reason = True, "length"
            if state.finished:
                state.cache = None

    def _fillers(self, rows: int, spare: int = 0) -> int:
        """Empty slots a new batch of `rows` rows is made with: batch invariant, padding up to MIN_ROWS rows;
        batched, `spare` slots within the row limit (an empty slot costs a batched step nothing, `_step`)."""
        if self.batch_invariant:
            return max(0, MIN_ROWS - rows)
        return max(0, min(self._limit - rows, spare))

    def _leave(self, row: Row) -> None:
        job = row.job
        job.left -= 1
        if job.left == 0 and not job.future.done():
            job.future.set_result(job.usage)

    def _shed(self, outside: list[Row]) -> None:
        """Out of GPU memory: half the rows go back to wait (each with its own cache) and the limit halves."""
        import torch

        live = [(i, r) for i, r in enumerate(self._slots) if r is not None]
        total = len(live) + len(outside)
        keep = min(len(live), max(1, total // 2))
        slab = self._slab
        for i, r in live[keep:]:
            r.state.cache = extract(slab.layers, i, slab.width - r.state.cached, slab.width)
        self._limit = max(1, total // 2)
        log.warning("%s ran out of GPU memory at %d rows; decoding at most %d rows at once from now on", self.name,
                    total, self._limit)
        with self._wake:
            self._waiting.extendleft(reversed([r for _, r in live[keep:]] + outside))
        fillers = self._fillers(keep)
        layers = stack(slab.layers, slab.width, [i for i, _ in live[:keep]], [], slab.width, fillers,
                       SPARE_COLUMNS) if keep else None
        self._slots = [r for _, r in live[:keep]] + [None] * fillers if keep else []
        self._slab = Slab(layers, slab.width) if layers is not None else None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _fail(self, exc: Exception, outside: list[Row]) -> None:
        """Every call with a row in the batch (or joining it) fails with `exc`; the batch starts again empty."""
        log.debug("%s: decoding failed", self.name, exc_info=True)
        for row in self._rows + outside:
            row.job.cancelled = True  # its rows still waiting are dropped too
            if not row.job.future.done():
                row.job.future.set_exception(exc)
        for row in self._rows:  # their caches were in the batch: a later call encodes them again
            row.state.cache, row.state.cached = None, 0
        self._slots, self._slab = [], None


def _units(pending: list[Row]) -> list[tuple[list[Row], list[int]]]:
    """What each pending row feeds next, in their order: its own next chunk, or, for rows of one call that go on
    with the same tokens from the same cache (a search's variants of one instruction, Best-of-N's copies of one
    prompt), the chunk they share, fed once for all of them where that saves SHARED_TOKENS. Only a call's own rows
    share, so where a row's chunks start never depends on other calls."""
    alike: dict[tuple, list[Row]] = {}
    for r in pending:
        key = (r.job, id(r.state.cache) if r.state.cached else None, r.state.cached) if r.buffer is None else id(r)
        alike.setdefault(key, []).append(r)
    units = []

    def keep(group: list[Row], length: int) -> None:
        start = group[0].state.cached
        if (len(group) - 1) * length >= SHARED_TOKENS:
            units.append((group, group[0].state.ids[start : start + length]))
        else:
            units.extend(([r], r.state.ids[start : min(start + PREFILL_CHUNK, len(r.state.ids) - 1)]) for r in group)

    for rows in alike.values():
        start = rows[0].state.cached
        rows.sort(key=lambda r: r.state.ids[start:])  # rows that start alike end up side by side
        group, length = [], 0
        for r in rows:
            own = min(len(r.state.ids) - 1 - start, PREFILL_CHUNK)
            shared = len(os.path.commonprefix([group[-1].state.ids[start:], r.state.ids[start:]])) if group else 0
            common = min(length, own, shared)
            if group and common * 2 >= length > 0:  # one more row, for at most half the shared length
                group.append(r)
                length = common
            else:
                if group:
                    keep(group, length)
                group, length = [r], own
        keep(group, length)
    order = {id(r): i for i, r in enumerate(pending)}
    return sorted(units, key=lambda unit: order[id(unit[0][0])])


def _by_sampling(rows: list[Row]) -> dict[Sampling, list[int]]:
    """The batch's row indices grouped by their sampling settings, in batch order."""
    groups: dict[Sampling, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row.sampling, []).append(i)
    return groups


def _row_view(buffer: Slab) -> tuple:
    """A one-row buffer's filled columns as the row's own cache (views: nothing is copied)."""
    return tuple((k[0], v[0]) for k, v in buffer.filled())
