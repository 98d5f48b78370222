"""One decoding thread per model: concurrent `extend` calls become rows of one batch, step by step.

Searches running at once (threads, asyncio tasks, serve's requests) each ask for a period of tokens for their
beams. Taking turns would decode 5 rows while the hardware could decode 40, so every beam is a row of one running
batch instead: it joins at the next step after its call arrives, leaves as soon as its period is decoded or it
ends, and the call returns when its last row has left. Rows beyond `max_batch_rows` (or `max_batch_tokens` of
cache) wait for a place.

A row carries everything that makes it itself: its cache, its sampling settings, its own random generator and its
stop conditions. Attention runs row by row (`attention.py`), so a seeded search decodes the same tokens alone or
beside any others.
"""
from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..config import Sampling
from ..errors import PolicyError
from ..protocols import Usage
from .attention import MIN_ROWS, Rows
from .batching import Slab, State, extract, forward_ragged, stack
from .sampling import sample

log = logging.getLogger(__name__)

IDLE_SECONDS = 2.0  # the thread ends when idle this long, and starts again with the next call
SPARE_COLUMNS = 64  # room the batch's cache is made with, so steps write in place (batching.Slab)


@dataclass(eq=False)
class Row:
    """One beam's place in the batch: what it still has to decode and how."""

    state: State
    steps: int
    sampling: Sampling
    generator: Any
    job: Job


@dataclass(eq=False)
class Job:
    """One `extend` call: its rows, what they spent, and the future its caller waits on."""

    rows: list[Row] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    future: Future = field(default_factory=Future)
    left: int = 0
    cancelled: bool = False


_ENGINES: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for engine in list(_ENGINES):
        engine.close()


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a call seeded `seed`: each beam has its own random stream."""
    return (seed * 0x9E3779B1 + index * 0x85EBCA77 + 1) % (2**63 - 1)


class Engine:
    """The batch and the thread that decodes it. `submit` returns a future of the call's Usage."""

    def __init__(self, model: Any, *, eos_ids: frozenset[int], pad_id: int, max_context: int | None,
                 max_batch_rows: int = 64, max_batch_tokens: int | None = None, name: str = "model"):
        if max_batch_rows < 1:
            raise ValueError(f"max_batch_rows must be at least 1, got {max_batch_rows}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1 (or None), got {max_batch_tokens}")
        self.model, self.eos_ids, self.pad_id, self.max_context = model, eos_ids, pad_id, max_context
        self.max_batch_rows, self.max_batch_tokens, self.name = max_batch_rows, max_batch_tokens, name
        self.peak_rows = 0  # the most rows decoded in one step, for tests and benchmarks
        self._waiting: deque[Row] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._rows: list[Row] = []  # the running batch, in cache order
        self._slab: Slab | None = None  # the batch's cache: per layer [rows + fillers, kv heads, columns, head dim]
        self._limit = max_batch_rows  # lowered after an out-of-memory error
        self._closing = False
        _ENGINES.add(self)

    # -- the callers' side ---------------------------------------------------------------------------------------

    def submit(self, states: list[State], steps: int, sampling: Sampling, seed: int) -> Future:
        import torch

        job = Job()
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
        """Drop a call's rows at the next step (its beams are left as they are)."""
        with self._wake:
            for row in list(self._waiting) + self._rows:
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

        with torch.inference_mode():
            while True:
                with self._wake:
                    if self._closing:
                        self._fail(PolicyError(f"{self.name}: the process is exiting"), list(self._waiting))
                        self._waiting.clear()
                        self._thread = None
                        return
                    if not self._rows and not self._waiting:
                        self._wake.wait(IDLE_SECONDS)
                        if not self._waiting:
                            self._thread = None
                            return
                    joining = self._admit()
                try:
                    self._regroup(joining)
                    if self._rows:
                        self._step()
                except Exception as exc:  # noqa: BLE001 - every caller in the batch hears of it
                    outside = [r for r in joining if r not in self._rows]  # their prefill failed
                    if isinstance(exc, torch.cuda.OutOfMemoryError) and len(self._rows) + len(outside) > 1:
                        self._shed(outside)
                        continue
                    self._fail(exc, outside)

    def _admit(self) -> list[Row]:
        """Waiting rows that fit (under the lock): rows and cache tokens within the limits, one row at least."""
        joining, rows = [], len(self._rows)
        tokens = sum(r.state.cached + 1 for r in self._rows)
        while self._waiting:
            row = self._waiting[0]
            if row.job.cancelled:
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
        """The batch for the next step: leavers out (each keeps its own cache), newcomers in."""
        if joining:
            self._prefill([r for r in joining if len(r.state.ids) - r.state.cached > 1])
        before, staying, leaving = self._rows, [], []
        for r in before:
            (leaving if r.steps <= 0 or r.state.finished or r.job.cancelled else staying).append(r)
        slab = self._slab
        if not joining and not leaving and slab is not None and slab.room:
            return
        for i, r in enumerate(before):
            if r in leaving and not r.state.finished and slab is not None:
                r.state.cache = extract(slab.layers, i, slab.width - r.state.cached, slab.width)
        for r in leaving:
            self._leave(r)
        self._rows = staying + joining
        if not self._rows:
            self._slab = None
            return
        keep = [i for i, r in enumerate(before) if r in staying]
        width = max(r.state.cached for r in self._rows)
        layers = stack(slab.layers if slab else None, slab.width if slab else 0, keep,
                       [r.state.cache for r in joining], width, max(0, MIN_ROWS - len(self._rows)), SPARE_COLUMNS)
        self._slab = Slab(layers, width) if layers is not None else None
        self.peak_rows = max(self.peak_rows, len(self._rows))

    def _prefill(self, rows: list[Row]) -> None:
        """Encode what newcomers have not encoded yet (a prompt, an adopted response), all but the last token."""
        if not rows:
            return
        states = [r.state for r in rows]
        caches, _ = forward_ragged(self.model, [s.ids[s.cached : -1] for s in states],
                                   [s.cache if s.cached else None for s in states], self.pad_id, logits_to_keep=1)
        for s, cache in zip(states, caches):
            s.cache, s.cached = cache, len(s.ids) - 1

    def _step(self) -> None:
        """One token for every row: one forward pass, then each row samples with its own settings and generator."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        rows, fillers = self._rows, max(0, MIN_ROWS - len(self._rows))
        slab = self._slab
        width = slab.width if slab is not None else 0
        input_ids = torch.tensor([[r.state.ids[-1]] for r in rows] + [[self.pad_id]] * fillers, device=device)
        positions = torch.tensor([[r.state.cached] for r in rows] + [[0]] * fillers, device=device)
        spans = [(width - r.state.cached, width + 1) for r in rows] + [(0, 0)] * fillers
        cache = slab.cache() if slab is not None else DynamicCache()
        out = self.model(input_ids=input_ids, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1,
                         rows=Rows(spans, [1] * len(rows) + [0] * fillers))
        if slab is not None:
            slab.width += 1
        else:  # nothing was cached yet (one-token prompts): the next regroup makes room
            self._slab = Slab([(layer.keys, layer.values) for layer in cache.layers], 1)
        logits = out.logits[:, -1, :]
        for i, row in enumerate(rows):
            token = int(sample(logits[i : i + 1], row.sampling, row.generator)[0])
            state = row.state
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

    def _leave(self, row: Row) -> None:
        job = row.job
        job.left -= 1
        if job.left == 0 and not job.future.done():
            job.future.set_result(job.usage)

    def _shed(self, outside: list[Row]) -> None:
        """Out of GPU memory: half the rows go back to wait (each with its own cache) and the limit halves."""
        import torch

        total = len(self._rows) + len(outside)
        keep = min(len(self._rows), max(1, total // 2))
        back = self._rows[keep:]
        slab = self._slab
        for i, r in enumerate(back, start=keep):
            r.state.cache = extract(slab.layers, i, slab.width - r.state.cached, slab.width)
        self._limit = max(1, total // 2)
        log.warning("%s ran out of GPU memory at %d rows; decoding at most %d rows at once from now on", self.name,
                    total, self._limit)
        with self._wake:
            self._waiting.extendleft(reversed(back + outside))
        self._rows = self._rows[:keep]
        layers = stack(slab.layers, slab.width, list(range(keep)), [], slab.width, max(0, MIN_ROWS - keep),
                       SPARE_COLUMNS) if keep else None
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
        self._rows, self._slab = [], None
