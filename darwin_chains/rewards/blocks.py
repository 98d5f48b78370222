"""What the encoder has already read: KV caches of prompts and of response blocks, least recently used out first.

Darwin scores every beam again each period, and a beam's response only grew. So the encoder keeps, per
instruction, the templated prompt's cache, and the response's cache in blocks of a fixed number of tokens counted
from its first token, each keyed by the response's token ids up to the block's end and carrying the running sum of
the response's hidden states there. A response is then read from its longest cached block prefix on.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

KV = tuple  # per layer: (keys, values), each [kv_heads, tokens, head_dim]


@dataclass(frozen=True)
class Block:
    """The cache of a block's own tokens, and the sum of the response's hidden states up to its end (None for a
    prompt)."""

    kv: tuple[KV, ...]
    total: Any
    tokens: int


class BlockCache:
    """Blocks by key, bounded by the tokens they hold (`max_tokens`); used by one pass at a time."""

    def __init__(self, max_tokens: int):
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be at least 0, got {max_tokens}")
        self.max_tokens = max_tokens
        self.tokens = 0
        self._blocks: OrderedDict[Hashable, Block] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, key: Hashable) -> Block | None:
        """The block, without marking it used (`touch` does, once a whole chain is known)."""
        return self._blocks.get(key)

    def touch(self, key: Hashable) -> None:
        if key in self._blocks:
            self._blocks.move_to_end(key)

    def put(self, key: Hashable, block: Block) -> None:
        old = self._blocks.pop(key, None)
        if old is not None:
            self.tokens -= old.tokens
        if block.tokens > self.max_tokens:
            return
        self._blocks[key] = block
        self.tokens += block.tokens
        while self.tokens > self.max_tokens:
            self.tokens -= self._blocks.popitem(last=False)[1].tokens

    def clear(self) -> None:
        self._blocks.clear()
        self.tokens = 0


__all__ = ["Block", "BlockCache"]
