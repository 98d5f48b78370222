"""Per-beam KV caches, batched for one forward pass and split back afterwards.

Every beam keeps its own cache (one key/value tensor pair per layer), so replacement never breaks it. While a beam
decodes, its cache is a row of the engine's batch (`engine.py`), left-padded so that every row's newest column is
the last; attention reads only the row's own columns (`attention.py`), and explicit position ids keep RoPE right.
When the beam's period ends its cache is copied back out.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


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


def stack(old: list[KV] | None, old_width: int, keep: list[int], newcomers: list[State], width: int,
          fillers: int = 0, spare: int = 0) -> list[KV] | None:
    """Per-layer batch tensors of `width` filled columns (and `spare` empty ones after them, to decode into):
    rows `keep` of the old batch, then each newcomer's own cache, then `fillers` empty rows. Every row's cache is
    left-padded, so its newest column is the last filled one."""
    import torch

    reference = old or next((s.cache for s in newcomers if s.cache is not None), None)
    if reference is None:
        return None
    index = torch.tensor(keep, device=reference[0][0].device) if keep else None
    carried = min(old_width, width)
    out = []
    for layer, (k0, v0) in enumerate(reference):
        shape = (len(keep) + len(newcomers) + fillers, k0.shape[-3], width + spare, k0.shape[-1])
        k, v = k0.new_zeros(shape), v0.new_zeros(shape)
        if keep:
            k[: len(keep), :, width - carried : width] = k0[:, :, old_width - carried : old_width].index_select(0, index)
            v[: len(keep), :, width - carried : width] = v0[:, :, old_width - carried : old_width].index_select(0, index)
        for r, s in enumerate(newcomers, start=len(keep)):
            if s.cached:
                k[r, :, width - s.cached : width], v[r, :, width - s.cached : width] = s.cache[layer]
        out.append((k, v))
    return out


class Slab:
    """The running batch's cache, with room to grow: each step writes one column in place, with no copy.

    transformers' dynamic cache concatenates every layer's keys and values at every step, copying the whole batch;
    here all rows append at the same column, so a step writes that column into spare room made when the batch
    was formed (`stack(..., spare=...)`)."""

    def __init__(self, layers: list[KV], width: int):
        self.layers, self.width = layers, width

    @property
    def room(self) -> int:
        return self.layers[0][0].shape[2] - self.width

    def filled(self) -> list[KV]:
        return [(k[:, :, : self.width], v[:, :, : self.width]) for k, v in self.layers]

    def cache(self) -> Any:
        """A transformers Cache whose layers write the next column of this slab."""
        from transformers.cache_utils import Cache

        layer = _slab_layer()
        return Cache(layers=[layer(self, i) for i in range(len(self.layers))])


@lru_cache(maxsize=1)
def _slab_layer() -> type:
    """The cache layer over a slab (built on first use: transformers is imported only when a model runs)."""
    from transformers.cache_utils import DynamicLayer

    class SlabLayer(DynamicLayer):
        def __init__(self, slab: Slab, index: int):
            super().__init__()
            self.slab, self.index, self.is_initialized = slab, index, True
            self.keys, self.values = slab.layers[index]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            keys, values = self.slab.layers[self.index]
            start, stop = self.slab.width, self.slab.width + key_states.shape[-2]
            keys[:, :, start:stop], values[:, :, start:stop] = key_states, value_states
            return keys[:, :, :stop], values[:, :, :stop]

        def get_seq_length(self) -> int:
            return self.slab.width

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.slab.width + query_length, 0

    return SlabLayer


def extract(cache: list[KV], row: int, start: int, stop: int) -> tuple[KV, ...]:
    """Row `row`'s own cache, columns start..stop, copied out of the batch (a view would keep the batch alive)."""
    return tuple((k[row, :, start:stop].clone(), v[row, :, start:stop].clone()) for k, v in cache)
