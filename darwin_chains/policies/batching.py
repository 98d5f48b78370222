"""Per-beam KV caches, batched for one forward pass and split back afterwards.

Every beam keeps its own cache (one key/value tensor pair per layer), so replacement never breaks it. Each period
the live beams' caches are stacked into one left-padded batch, and the tokens a beam has not encoded yet are fed
right-aligned in the same forward pass. Attention masks hide the padding, explicit position ids keep RoPE right,
and the batch is split back into per-beam caches when the period ends.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PolicyError

KV = tuple  # per layer: (keys, values), each [kv_heads, cached_tokens, head_dim]


@dataclass
class State:
    """Token ids of one beam and the cache that covers the first `cached` of them."""

    prompt_ids: tuple[int, ...]
    response_ids: list[int]
    cache: tuple[KV, ...] | None = None
    cached: int = 0
    finished: bool = False

    @property
    def ids(self) -> list[int]:
        return [*self.prompt_ids, *self.response_ids]


def ragged_batch(states: list[State], feed: list[list[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any, Any]:
    """A batch that feeds `feed[i]` on top of state i's cache: caches left-padded, new tokens right-aligned.

    Between a short cache and its new tokens lie padding columns; the attention mask hides them and explicit
    position ids give every real token its true position.
    """
    import torch
    from transformers import DynamicCache

    rows, width = len(states), max(map(len, feed))
    past = max(s.cached for s in states)
    mask = torch.zeros(rows, past + width, dtype=torch.long, device=device)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long, device=device)
    positions = torch.zeros(rows, width, dtype=torch.long, device=device)
    for r, (s, ids) in enumerate(zip(states, feed)):
        mask[r, past - s.cached : past] = 1
        mask[r, past + width - len(ids) :] = 1
        input_ids[r, width - len(ids) :] = torch.tensor(ids, device=device)
        positions[r, width - len(ids) :] = torch.arange(s.cached, s.cached + len(ids), device=device)
    cache = DynamicCache(ddp_cache_data=stack(states, past)) if past else DynamicCache()
    return cache, mask, input_ids, positions


def stack(states: list[State], past: int) -> list[KV]:
    """Per-layer batch tensors, each beam's cache left-padded to `past` tokens."""
    reference = next(s.cache for s in states if s.cache is not None)
    out = []
    for layer, (k0, v0) in enumerate(reference):
        keys = k0.new_zeros(len(states), k0.shape[0], past, k0.shape[2])
        values = v0.new_zeros(len(states), v0.shape[0], past, v0.shape[2])
        for r, s in enumerate(states):
            if s.cached:
                k, v = s.cache[layer]
                keys[r, :, past - s.cached :] = k
                values[r, :, past - s.cached :] = v
        out.append((keys, values))
    return out


def split(cache: Any, mask: Any, states: list[State]) -> None:
    """Give each unfinished state its own unpadded cache back; the last sampled token stays pending."""
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    for r, state in enumerate(states):
        if state.finished:
            continue
        columns = mask[r].nonzero().squeeze(1)
        state.cache = tuple((k[r][:, columns], v[r][:, columns]) for k, v in layers)
        state.cached = len(columns)
        if state.cached != len(state.prompt_ids) + len(state.response_ids) - 1:
            raise PolicyError("internal error: cache length does not match the beam's tokens")
