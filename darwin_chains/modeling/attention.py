"""Attention over each row's own keys: one masked call for a decoding step's rows, or one row at a time.

By default a decoding step's rows share one SDPA call, each masked to its own key columns (`Rows.batched`): no
loop over rows in every layer, and no padding, so a lone beam's step costs a lone beam's work. A row's numbers then
depend, to float rounding, on the batch it shares.

Batch invariant (`HFPolicy(batch_invariant=True)`), batching concurrent searches must not change their answers.
On CPU, a row's matmul results do not depend on how many rows share the call once there are at least `MIN_ROWS`
of them, but padded attention does: where a row's keys sit among the padding changes how the softmax sums round.
So each row attends over its own keys only, gathered contiguously, and a seeded search gives the same numbers
alone or beside any others (`tests/unit/test_engine.py`); a step of one row then costs what one of four does.

A model switched to this implementation (`use_row_attention`) still works as usual when it is called without
`rows`: the call goes to PyTorch's SDPA with the usual masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAME = "darwin_rows"
MIN_ROWS = 4  # fewer rows than this take another matmul kernel on CPU, with other rounding


@dataclass(frozen=True)
class Rows:
    """Which key columns each batch row attends, and how many of its last query positions are real.

    `keys[r]` is a (start, stop) span of cache columns, or a tensor of column indices; a row with no real query
    (`queries[r] == 0`, padding) gets zeros. `batched`: one decoding query per row and spans only; the rows share
    one attention call (faster, and a row's numbers then depend on its batch).
    """

    keys: list[Any]
    queries: list[int]
    batched: bool = False


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
    if rows.batched:  # one query a row: every row in one call, masked to its own span of columns
        bounds = torch.tensor(rows.keys, device=query.device)
        columns = torch.arange(key.shape[2], device=query.device)
        mask = (columns >= bounds[:, :1]) & (columns < bounds[:, 1:])
        attended = sdpa(query[:, :, -1:], key, value, attn_mask=mask[:, None, None, :], scale=scaling,
                        enable_gqa=groups > 1)
        return attended.transpose(1, 2), None
    out = query.new_zeros(batch, width, heads, value.shape[-1])
    for r, (columns, n) in enumerate(zip(rows.keys, rows.queries)):
        if n == 0:
            continue
        if isinstance(columns, tuple):
            k, v = key[r, :, columns[0] : columns[1]], value[r, :, columns[0] : columns[1]]
        else:
            k, v = key[r].index_select(1, columns), value[r].index_select(1, columns)
        if n == 1:  # decoding: the query heads that share a key head are that head's queries, nothing repeated
            q = query[r, :, width - 1].reshape(k.shape[0], groups, dim)
            attended = sdpa(q[None], k[None], v[None], attn_mask=None, scale=scaling)
            out[r, width - 1] = attended[0].reshape(heads, -1)
            continue
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)
        span = k.shape[1]  # causal, aligned to the last key: query i sees every key up to its own position
        mask = torch.ones(n, span, dtype=torch.bool, device=query.device).tril(span - n)
        attended = sdpa(query[r, :, width - n :][None], k[None], v[None], attn_mask=mask, scale=scaling)
        out[r, width - n :] = attended[0].transpose(0, 1)
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
