"""Attention over each row's own keys: masked calls shared by a decoding step's rows, or one row at a time.

By default a decoding step's rows share SDPA calls, each row masked to its own key columns (`Rows.batched`): no
loop over rows in every layer, and no padding rows, so a lone beam's step costs a lone beam's work. Rows are
left-padded to the longest, so a run of short rows (a search's beams sit together) gets a call over its own
columns where that saves more reading than a call costs (`Rows.runs`). A row's numbers then depend, to float
rounding, on the batch it shares.

Batch invariant (`HFPolicy(batch_invariant=True)`), batching concurrent searches must not change their answers.
On CPU, a row's matmul results do not depend on how many rows share the call once there are at least `MIN_ROWS`
of them, but padded attention does: where a row's keys sit among the padding changes how the softmax sums round.
So each row attends over its own keys only, gathered contiguously, and a seeded search gives the same numbers
alone or beside any others (`tests/unit/test_engine.py`); a step of one row then costs what one of four does.

A model switched to this implementation (`use_row_attention`) still works as usual when it is called without
`rows`: the call goes to PyTorch's SDPA with the usual masks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

NAME = "darwin_rows"
MIN_ROWS = 4  # fewer rows than this take another matmul kernel on CPU, with other rounding
# What one more attention call a layer costs, in row-columns of keys and values read: about half a millisecond a
# step over SmolLM2's 30 layers, the time reading 170 row-columns takes there (46 KB each in float32).
CALL_COLUMNS = 170


@dataclass(frozen=True)
class Rows:
    """Which key columns each row attends, and how many query positions are its own.

    `keys[r]` is a (start, stop) span of cache columns, or a tensor of column indices; a row with no real query
    (`queries[r] == 0`, padding) or no key gets zeros. Row r is batch row r, its queries the last `queries[r]`
    positions; `packed`: every row lies in batch row 0, its queries following the previous row's, with no padding
    between them (`batching.forward_ragged`). `batched`: one decoding query per row and spans only; the rows share
    attention calls (faster, and a row's numbers then depend on its batch). `slots`, batched: the cache row of each
    query row, where the batch's cache has rows that decode nothing (empty slots, `Engine._regroup`).
    """

    keys: list[Any]
    queries: list[int]
    batched: bool = False
    packed: bool = False
    slots: list[int] | None = None
    _masks: dict = field(default_factory=dict, compare=False, repr=False)  # made once a step (`masks`)

    @cached_property
    def runs(self) -> list[tuple[int, int, int]]:
        """Batched: (first row, stop row, first column) of each call. Rows are left-padded to the longest, and a call
        reads every column from its run's earliest start for every row, so short rows that sit together (a search's
        beams join together) get a call of their own where the columns saved outweigh the call's cost. A run's cache
        rows are contiguous: an empty slot between two rows ends a run."""
        starts = [start for start, _ in self.keys]
        stop = max((end for _, end in self.keys), default=0)
        slots = self.slots or range(len(starts))
        best, cut = [0.0], [0]  # best[i]: the cheapest cost of rows before i; cut[i]: where its last run starts
        for i in range(1, len(starts) + 1):
            lowest, choice = stop, (math.inf, 0)
            for j in range(i - 1, -1, -1):
                if slots[i - 1] - slots[j] != i - 1 - j:
                    break
                lowest = min(lowest, starts[j])
                choice = min(choice, (best[j] + (i - j) * (stop - lowest) + CALL_COLUMNS, j))
            best.append(choice[0])
            cut.append(choice[1])
        runs, i = [], len(starts)
        while i:
            runs.append((cut[i], i, min(starts[cut[i] : i])))
            i = cut[i]
        return runs[::-1]

    def masks(self, columns: int, like: Any) -> list[Any]:
        """Batched: each run's additive mask over the columns it reads (0 on a row's span, -inf elsewhere), in
        `like`'s dtype and device. Every layer of a step reads as many columns, so they are made once a step."""
        import torch

        key = (columns, like.dtype, like.device)
        if key not in self._masks:
            bounds = torch.tensor(self.keys, device=like.device)
            made = []
            for first, last, start in self.runs:
                span = torch.arange(start, columns, device=like.device)
                inside = (span >= bounds[first:last, :1]) & (span < bounds[first:last, 1:])
                blocked = torch.zeros(inside.shape, dtype=like.dtype, device=like.device)
                made.append(blocked.masked_fill_(~inside, float("-inf"))[:, None, None, :])
            self._masks[key] = made
        return self._masks[key]


def row_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                  dropout: float = 0.0, rows: Rows | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention interface: query [B, H, T, D], key and value [B, KV, L, D] -> [B, T, H, D]."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if rows is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    batch, heads, width, dim = query.shape
    groups = heads // key.shape[1]
    if rows.batched:  # one query a row: runs of rows share a call, each row masked to its own span of columns
        slots = rows.slots or range(batch)
        parts = [sdpa(query[first:last, :, -1:], key[slots[first] : slots[first] + last - first, :, start:],
                      value[slots[first] : slots[first] + last - first, :, start:], attn_mask=mask, scale=scaling,
                      enable_gqa=groups > 1)
                 for (first, last, start), mask in zip(rows.runs, rows.masks(key.shape[2], query))]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).transpose(1, 2), None
    out = query.new_zeros(batch, width, heads, value.shape[-1])
    end = 0
    for r, (columns, n) in enumerate(zip(rows.keys, rows.queries)):
        b, stop = (0, end + n) if rows.packed else (r, width)  # the row's batch row, and where its queries end
        end += n
        if isinstance(columns, tuple):
            k, v = key[b, :, columns[0] : columns[1]], value[b, :, columns[0] : columns[1]]
        else:
            k, v = key[b].index_select(1, columns), value[b].index_select(1, columns)
        if n == 0 or k.shape[1] == 0:
            continue
        if n == 1:  # decoding: the query heads that share a key head are that head's queries, nothing repeated
            q = query[b, :, stop - 1].reshape(k.shape[0], groups, dim)
            attended = sdpa(q[None], k[None], v[None], attn_mask=None, scale=scaling)
            out[b, stop - 1] = attended[0].reshape(heads, -1)
            continue
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)
        span = k.shape[1]  # causal, aligned to the last key: query i sees every key up to its own position
        mask = torch.ones(n, span, dtype=torch.bool, device=query.device).tril(span - n)
        attended = sdpa(query[b, :, stop - n : stop][None], k[None], v[None], attn_mask=mask, scale=scaling)
        out[b, stop - n : stop] = attended[0].transpose(0, 1)
    return out, None


def use_row_attention(model: Any) -> None:
    """Register the implementation (once per process) and switch `model` to it."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, row_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # the usual masks when called without rows
    if getattr(model.config, "_attn_implementation", None) != NAME:
        model.set_attn_implementation(NAME)
