"""SmolLM2's middle-layer hidden states as features of a response, read in the context of its instruction.

A causal LM's hidden state at a response token already depends on the instruction before it, so the mean over the
response's tokens says how the response relates to what was asked, not only what it is about. Layer 15 of 30 ranked
GPT-4 Turbo's preferences better than the last layer (benchmarks/reward/runs/backbone-cut128/), and stopping there
halves the cost: the model is loaded with its first 15 layers only. Because the model is causal, one forward pass
gives the means of every prefix too (`encode(..., cuts=(40, 80))`), which is how training sees partial answers.

Scoring (`means`) reads a response only from where it last read it (`blocks.py`): every forward pass there is a
block of fixed boundaries on top of the cache of what comes before it, in batches of at least `MIN_ROWS` tokens with
row attention (`modeling/attention.py`) and, in fp32 on CPU, products over weights packed for oneDNN, which give a
token the same numbers however many share them (`modeling/products.py`). Each computation's inputs are then a
function of the text alone, so a text's features are bitwise the same whether read from scratch or from cache,
alone or beside other searches' rows.
That holds in fp32, the encoder's default dtype (`devices.feature_dtype`); in bf16 it is approximate (see there).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..devices import feature_dtype
from ..loading import LOCK, load_once, quiet_transformers
from ..modeling.attention import use_row_attention
from ..modeling.batching import forward_ragged
from ..modeling.products import packed_products, use_packed_products
from ..modeling.threads import borrowed_threads
from .blocks import Block, BlockCache
from .coalesce import Coalescer

LAYER = 15
MAX_PROMPT_TOKENS = 160
# Darwin's default period (m = 40; 80 was the paper's best): one block a beam a period, nothing read twice. Each
# block is a forward pass, so fewer, longer blocks cost less (a search with blocks of 8 cost 1.7x, of 16 1.4x, in
# benchmarks/reward/incremental.py); with another m, a period re-reads the last partial block (up to 39 tokens).
BLOCK_TOKENS = 40
CACHE_TOKENS = 8192  # about 180 MB in fp32 (15 layers x keys and values x 192 = 22.5 KB a token), 90 MB in bf16


@dataclass(eq=False)
class _Read:
    """One response being read in a pass: its cache so far, its running sum, and the pieces still to read."""

    instruction: str
    ids: tuple[int, ...]
    chain: list[Block]  # the cached blocks it starts with
    total: Any  # sum of its hidden states read so far
    pieces: list[tuple[int, int]]  # (start, stop) of each piece still to read
    sums: dict[int, Any] = field(default_factory=dict)  # running sum at each block end
    kv: list[Any] = field(default_factory=list)  # per layer (keys, values) over prompt and read tokens


class ResponseEncoder:
    """Mean hidden state after `layer` decoder layers over the first `max_response_tokens` response tokens.

    The instruction is framed by the model's chat template, as the policy frames it, and cut from the left to
    `max_prompt_tokens`. Runs in `dtype` (`devices.feature_dtype`: fp32 unless asked otherwise), the dtype in which
    a text's features do not depend on how they were read. The head was trained on bf16 features and agrees as well
    on fp32 ones (benchmarks/reward/README.md).

    `means` keeps what it read in `blocks`, at most `cache_tokens` tokens of prompts and response blocks (22.5 KB
    a token in fp32: 180 MB by default), least recently used out first; what was evicted is read again, with the
    same result.
    """

    def __init__(self, path: str | Path | None = None, layer: int = LAYER, max_response_tokens: int = 256,
                 max_prompt_tokens: int = MAX_PROMPT_TOKENS, block_tokens: int = BLOCK_TOKENS,
                 cache_tokens: int = CACHE_TOKENS, max_rows: int = 64, dtype: Any = None):
        import torch

        from ..embedded import smollm2_dir

        path = Path(path) if path is not None else smollm2_dir()
        self.path, self.torch, self.layer, self.dtype = path, torch, layer, feature_dtype(dtype)
        self.max_response_tokens, self.max_prompt_tokens = max_response_tokens, max_prompt_tokens
        with LOCK:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path)
            with quiet_transformers():  # the dropped upper layers are reported as unexpected weights
                self.model = AutoModel.from_pretrained(path, num_hidden_layers=layer, dtype=self.dtype).eval()
        self.model.norm = torch.nn.Identity()  # the features are the residual stream itself, not its final norm
        use_row_attention(self.model)  # calls without `rows` (encode, instruction) still go to SDPA as before
        # float32 on CPU: weights packed for oneDNN, the same numbers for a row however many share a pass (products.py)
        self._packed = use_packed_products(self.model)
        self.dim = self.model.config.hidden_size
        self._lock = threading.Lock()  # one call at a time: torch already uses every core, and the tokenizer is shared
        self.block_tokens, self.max_rows = block_tokens, max_rows  # rows of one forward pass in `means`
        self.blocks = BlockCache(cache_tokens)  # LRU, bounded by `cache_tokens` cached tokens
        self._coalescer: Coalescer = Coalescer(self._read_all)
        self.tokens_encoded = 0  # tokens fed to the model by `means`, prompts included (tests, benchmarks)
        self._frame = self._template_frame()
        # Darwin scores against the same instruction every period: template it and read it once.
        self._prompt = lru_cache(maxsize=256)(self._templated)
        self.instruction = lru_cache(maxsize=256)(self._instruction_mean)

    def _template_frame(self) -> tuple[int, int]:
        """How many template tokens come before and after the user's text (system message, role markers)."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], add_generation_prompt=True,
                                                  tokenize=False)
        before, after = text.split("\x00")
        return (len(self.tokenizer(before, add_special_tokens=False)["input_ids"]),
                len(self.tokenizer(after, add_special_tokens=False)["input_ids"]))

    def _templated(self, instruction: str) -> tuple[list[int], int, int]:
        """The templated prompt's ids, cut from the left to max_prompt_tokens, and where the instruction's own
        tokens start and end in them."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}],
                                                  add_generation_prompt=True, tokenize=False)
        full = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = full[-self.max_prompt_tokens :]
        start = max(0, self._frame[0] - (len(full) - len(ids)))
        return ids, min(start, len(ids) - 1), max(start + 1, len(ids) - self._frame[1])

    @borrowed_threads()
    def _instruction_mean(self, instruction: str) -> np.ndarray:
        """Mean hidden state over the instruction's own tokens (not the template's): what the response should be
        about. Called as `instruction(text)`, cached."""
        with self._lock, self.torch.inference_mode():
            ids, start, end = self._prompt(instruction)
            hidden = self.model(input_ids=self.torch.tensor([ids])).last_hidden_state[0].float()
        return hidden[start:end].mean(0).numpy()

    @borrowed_threads()
    def encode(self, items: Sequence[tuple[str, str]], cuts: Sequence[int] | None = None,
               batch_size: int = 16) -> np.ndarray:
        """Features of (instruction, response) items: shape (items, len(cuts), hidden) with the mean over the first
        `cut` response tokens for each cut (all of the response when shorter), or (items, hidden) without cuts."""
        torch = self.torch
        limits = list(cuts) if cuts is not None else [self.max_response_tokens]
        read = min(max(limits), self.max_response_tokens)
        out = np.empty((len(items), len(limits), self.dim), dtype=np.float32)
        with self._lock, torch.inference_mode():
            encoded = []
            for instruction, response in items:
                response_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"][:read]
                encoded.append((self._prompt(instruction)[0], response_ids or [self.tokenizer.eos_token_id]))
            order = sorted(range(len(items)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))  # less padding
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(encoded[i][0]) + len(encoded[i][1]) for i in chunk)
                ids = torch.zeros((len(chunk), width), dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, i in enumerate(chunk):  # right padding: positions stay 0..n-1 for every row
                    prompt, response = encoded[i]
                    ids[row, : len(prompt) + len(response)] = torch.tensor(prompt + response)
                    mask[row, : len(prompt) + len(response)] = 1
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                for row, i in enumerate(chunk):
                    prompt, response = encoded[i]
                    sums = hidden[row, len(prompt) : len(prompt) + len(response)].cumsum(0)
                    for c, limit in enumerate(limits):
                        n = min(limit, len(response))
                        out[i, c] = (sums[n - 1] / n).numpy()
        return out if cuts is not None else out[:, 0]

    @property
    def passes(self) -> int:
        """Passes `means` has run (a forward pass per block in each): concurrent calls merged into one count once."""
        return self._coalescer.passes

    def means(self, items: Sequence[tuple[str, str]], cuts: Sequence[int] | None = None) -> np.ndarray:
        """What `encode(items, cuts)` gives, up to float rounding, read incrementally: only the response tokens
        past the longest cached block prefix are encoded. Concurrent calls are merged into one pass. Cuts must be
        block ends (multiples of `block_tokens`); a cut mean is then bitwise what the cut response would score."""
        limits = list(cuts) if cuts is not None else [self.max_response_tokens]
        if any(c < 1 or (c % self.block_tokens and c < self.max_response_tokens) for c in limits):
            raise ValueError(f"cuts must be multiples of {self.block_tokens}, got {limits}")
        if not items:
            return np.empty((0, len(limits), self.dim) if cuts is not None else (0, self.dim), dtype=np.float32)
        out = np.stack(self._coalescer([(instruction, response, tuple(limits)) for instruction, response in items]))
        return out if cuts is not None else out[:, 0]

    @borrowed_threads()
    def _read_all(self, items: list[tuple[str, str, tuple[int, ...]]]) -> list[np.ndarray]:
        """One pass for every queued item: prompts not cached, then one round per block still to read."""
        torch = self.torch
        with self._lock, torch.inference_mode(), packed_products(self._packed):
            reads: dict[tuple[str, tuple[int, ...]], _Read] = {}
            wanted = []
            for instruction, response, limits in items:
                ids = self.tokenizer(response, add_special_tokens=False)["input_ids"][: self.max_response_tokens]
                ids = tuple(ids or [self.tokenizer.eos_token_id])
                if (instruction, ids) not in reads:
                    reads[instruction, ids] = self._plan(instruction, ids)
                wanted.append((reads[instruction, ids], limits))
            planned = list(reads.values())
            for start in range(0, len(planned), self.max_rows):  # each read holds its whole cache until it is done
                group = pending = planned[start : start + self.max_rows]
                self._read_prompts(pending)
                while pending := [r for r in pending if r.pieces]:
                    self._read_blocks(pending)
                for r in group:
                    r.kv, r.chain = [], []
            out = []
            for read, limits in wanted:
                n = len(read.ids)
                out.append(torch.stack([read.sums.get(min(c, n), read.total) / min(c, n)
                                        for c in limits]).numpy())
            return out

    def _plan(self, instruction: str, ids: tuple[int, ...]) -> _Read:
        """The longest cached chain of whole blocks this response starts with, and the pieces left to read."""
        size, chain, stop = self.block_tokens, [], self.block_tokens
        while stop <= len(ids) and (block := self.blocks.get((instruction, ids[:stop]))) is not None:
            chain.append(block)
            stop += size
        done = stop - size
        for end in range(done, 0, -size):  # the chain's start is used last, so evicted last
            self.blocks.touch((instruction, ids[:end]))
        self.blocks.touch((instruction,))
        start = chain[-1].total if chain else self.torch.zeros(self.dim, dtype=self.torch.float32)
        return _Read(instruction, ids, chain, start,
                     [(s, min(s + size, len(ids))) for s in range(done, len(ids), size)],
                     {(i + 1) * size: block.total for i, block in enumerate(chain)})

    def _read_prompts(self, reads: list[_Read]) -> None:
        """Encode the prompts not cached (one row per instruction), then start each read's cache with its prompt."""
        torch = self.torch
        prompts = {r.instruction: self.blocks.get((r.instruction,)) for r in reads}
        missing = [instruction for instruction, block in prompts.items() if block is None]
        if missing:
            ids = [self._prompt(instruction)[0] for instruction in missing]
            caches, _ = self._forward(ids, [None] * len(ids))
            for instruction, kv, prompt in zip(missing, caches, ids):
                prompts[instruction] = Block(kv, None, len(prompt))
                self.blocks.put((instruction,), prompts[instruction])
        for r in reads:
            parts = [prompts[r.instruction].kv, *(block.kv for block in r.chain)]
            r.kv = [(torch.cat([p[layer][0] for p in parts], 1), torch.cat([p[layer][1] for p in parts], 1))
                    if len(parts) > 1 else parts[0][layer] for layer in range(len(parts[0]))]

    def _read_blocks(self, reads: list[_Read]) -> None:
        """Each read's next piece on top of its cache; whole blocks are cached for the next period."""
        caches, hidden = self._forward([list(r.ids[s:e]) for r in reads for s, e in r.pieces[:1]],
                                       [r.kv for r in reads])
        for r, kv, h in zip(reads, caches, hidden):
            start, stop = r.pieces.pop(0)
            r.kv, r.total = kv, r.total + h.float().sum(0)
            if stop - start == self.block_tokens:
                r.sums[stop] = r.total
                own = tuple((k[:, -self.block_tokens :].clone(), v[:, -self.block_tokens :].clone()) for k, v in kv)
                self.blocks.put((r.instruction, r.ids[:stop]), Block(own, r.total, self.block_tokens))

    def _forward(self, feeds: list[list[int]], caches: list[list[Any] | None]) -> tuple[list[Any], list[Any]]:
        """Each feed on top of its own cache (`batching.forward_ragged`): each row's cache after it and the hidden
        states of its fed tokens."""
        caches, out = forward_ragged(self.model, feeds, caches)
        lengths = [len(ids) for ids in feeds]
        self.tokens_encoded += sum(lengths)
        return caches, list(out.last_hidden_state[0, : sum(lengths)].split(lengths))


def shared_encoder(path: str | None = None, max_response_tokens: int = 256, dtype: Any = None) -> ResponseEncoder:
    """One encoder per process and dtype: rewards built for concurrent searches share its weights and its cache."""
    return _shared_encoder(path, max_response_tokens, feature_dtype(dtype))


@load_once
def _shared_encoder(path: str | None, max_response_tokens: int, dtype: Any) -> ResponseEncoder:
    return ResponseEncoder(path, max_response_tokens=max_response_tokens, dtype=dtype)


__all__ = ["ResponseEncoder", "shared_encoder", "LAYER"]
