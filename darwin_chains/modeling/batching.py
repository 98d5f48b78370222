"""Per-beam KV caches, batched for one forward pass and split back afterwards.

Every beam keeps its own cache (one key/value tensor pair per layer), so replacement never breaks it. While a beam
decodes, its cache is a row of the engine's batch (`engine.py`), left-padded so that every row's newest column is
the last; attention reads only the row's own columns (`attention.py`), and explicit position ids keep RoPE right.
When the beam's period ends its cache is copied back out (or, when every row leaves at once, kept as a view
of the batch, which nothing writes again). Encoding prompts and adopted responses (`forward_ragged`) lays the
rows' tokens side by side with no padding instead, so a pass costs its real tokens however ragged they are.
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
    finish_reason: str | None = None  # "length" when the context window ended it
    constraint: Any = None  # with a JSON schema: the grammar's state after response_ids (`grammar.Constraint`)

    @property
    def ids(self) -> list[int]:
        return [*self.prompt_ids, *self.response_ids]


def stack(old: list[KV] | None, old_width: int, keep: list[int], newcomers: list[Any], width: int,
          fillers: int = 0, spare: int = 0, release: bool = False) -> list[KV] | None:
    """Per-layer batch tensors of `width` filled columns (and `spare` empty ones after them, to decode into):
    rows `keep` of the old batch, then each newcomer's own cache (None: nothing cached), then `fillers` empty rows.
    Every row's cache is left-padded, so its newest column is the last filled one.

    With `release`, newcomers' caches are lists the caller gives up: each layer is dropped once copied, so long
    prompts' caches are never held twice over."""
    import torch

    reference = old or next((c for c in newcomers if c is not None), None)
    if reference is None:
        return None
    index = torch.tensor(keep, device=reference[0][0].device) if keep else None
    carried = min(old_width, width)
    # Each row's padding is zeroed (masked keys must still be finite numbers), its filled columns copied and the
    # spare ones left as they are, to be written before they are read: the batch's memory is touched once.
    lengths = [carried] * len(keep) + [0 if c is None else c[0][0].shape[1] for c in newcomers] + [0] * fillers
    out = []
    for layer in range(len(reference)):
        k0, v0 = reference[layer]
        shape = (len(lengths), k0.shape[-3], width + spare, k0.shape[-1])
        k, v = k0.new_empty(shape), v0.new_empty(shape)
        for r, n in enumerate(lengths):
            if n < width:
                k[r, :, : width - n], v[r, :, : width - n] = 0, 0
        if keep:
            k[: len(keep), :, width - carried : width] = k0[:, :, old_width - carried : old_width].index_select(0, index)
            v[: len(keep), :, width - carried : width] = v0[:, :, old_width - carried : old_width].index_select(0, index)
        for r, cache in enumerate(newcomers, start=len(keep)):
            if cache is not None and (n := cache[layer][0].shape[1]):
                k[r, :, width - n : width], v[r, :, width - n : width] = cache[layer]
            if cache is not None and release:
                cache[layer] = None
        out.append((k, v))
    return out


def forward_ragged(model: Any, feeds: list[list[int]], caches: list[tuple[KV, ...] | None], pad_id: int = 0,
                   **kwargs: Any) -> tuple[list[tuple[KV, ...]], Any]:
    """One forward pass of each `feeds[i]` on top of its own `caches[i]`: each row's cache after it (covering its
    cached and fed tokens) and the model's output, whose batch row 0 holds every fed token in feed order.

    The feeds lie side by side in one sequence and the caches one after another, with no padding: a pass costs its
    real tokens, however ragged they are. Positions are explicit, each row attends only its own columns
    (`attention.py`), and the pass has at least MIN_ROWS tokens, so a row's numbers do not depend on the others."""
    import torch
    from transformers import DynamicCache

    from .attention import MIN_ROWS, Rows

    device = model.device
    pasts = [0 if c is None else c[0][0].shape[1] for c in caches]
    fed = sum(map(len, feeds))
    fillers = max(0, MIN_ROWS - fed)  # the matmuls need MIN_ROWS tokens: padding tokens that attend nothing
    ids = [t for feed in feeds for t in feed] + [pad_id] * fillers
    positions = [p for feed, past in zip(feeds, pasts) for p in range(past, past + len(feed))] + [0] * fillers
    keys, column, end = [], 0, sum(pasts)
    for feed, past in zip(feeds, pasts):
        keys.append(torch.cat([torch.arange(column, column + past), torch.arange(end, end + len(feed))]).to(device))
        column, end = column + past, end + len(feed)
    cached = [c for c, past in zip(caches, pasts) if past]
    layers = [tuple(torch.cat([c[layer][i] for c in cached], 1)[None] for i in (0, 1))
              for layer in range(len(cached[0]))] if cached else None
    cache = DynamicCache(ddp_cache_data=layers) if layers else DynamicCache()
    out = model(input_ids=torch.tensor([ids], device=device), position_ids=torch.tensor([positions], device=device),
                cache=cache, use_cache=True, rows=Rows(keys + [(0, 0)] * bool(fillers),
                                                        [len(f) for f in feeds] + [fillers] * bool(fillers),
                                                        packed=True), **kwargs)
    layers = [(layer.keys[0], layer.values[0]) for layer in cache.layers]
    return [tuple((k.index_select(1, keys[r]), v.index_select(1, keys[r])) for k, v in layers)
            for r in range(len(feeds))], out


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

    def cache(self, rows: Any = None) -> Any:
        """A transformers Cache whose layers write the next column of this slab: of every row, or of `rows` (an
        index tensor) only."""
        from transformers.cache_utils import Cache

        layer = _slab_layer()
        return Cache(layers=[layer(self, i, rows) for i in range(len(self.layers))])


@lru_cache(maxsize=1)
def _slab_layer() -> type:
    """The cache layer over a slab (built on first use: transformers is imported only when a model runs)."""
    from transformers.cache_utils import DynamicLayer

    class SlabLayer(DynamicLayer):
        def __init__(self, slab: Slab, index: int, rows: Any = None):
            super().__init__()
            self.slab, self.index, self.rows, self.is_initialized = slab, index, rows, True
            self.keys, self.values = slab.layers[index]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            keys, values = self.slab.layers[self.index]
            start, stop = self.slab.width, self.slab.width + key_states.shape[-2]
            if self.rows is None:
                keys[:, :, start:stop], values[:, :, start:stop] = key_states, value_states
            else:
                keys[self.rows, :, start:stop], values[self.rows, :, start:stop] = key_states, value_states
            return keys[:, :, :stop], values[:, :, :stop]

        def get_seq_length(self) -> int:
            return self.slab.width

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.slab.width + query_length, 0

    return SlabLayer


def extract(cache: list[KV], row: int, start: int, stop: int, copy: bool = True) -> tuple[KV, ...]:
    """Row `row`'s own cache, columns start..stop, copied out of the batch: a view keeps the whole batch alive, so
    views (`copy=False`) are for a batch whose rows all leave at once."""
    if not copy:
        return tuple((k[row, :, start:stop], v[row, :, start:stop]) for k, v in cache)
    return tuple((k[row, :, start:stop].clone(), v[row, :, start:stop].clone()) for k, v in cache)
