"""A local Hugging Face causal LM as a Darwin policy, with a KV cache that survives replacement.

The paper's reference code re-encodes prompt and response every period, because replacement breaks the batched
cache. Here every beam keeps its own cache, and while it decodes it is a row of the engine's batch (engine.py),
beside the beams of any other search on the same model: one carried-over token is fed for a beam that survived,
the adopted response for a beam that was replaced. A replaced beam keeps the cache of its *own* prompt, and of
whatever start of the adopted response it had already written, and encodes only the rest; a beam adopting from a
beam with the same prompt copies that cache outright.

Token ids stay token ids: a response is decoded to text only for the reward, never re-encoded.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from ..config import Sampling
from ..devices import batch_invariance, default_device, default_dtype
from ..errors import ConfigError, InputError
from ..loading import LOCK
from ..prompt import Prompt
from ..protocols import Beam, Usage
from ..modeling.attention import use_row_attention
from ..modeling.batching import State
from .engine import Engine, wait
from .grammar import JsonGrammar

log = logging.getLogger(__name__)

class HFPolicy:
    """Darwin's policy over any `transformers` causal LM and its tokenizer's chat template.

    Example:
        >>> from darwin_chains.policies.hf import HFPolicy
        >>> policy = HFPolicy.from_pretrained("path/to/model")          # or HFPolicy(model, tokenizer)
        >>> beams = policy.start([Prompt.of("Name a colour.")], max_new_tokens=32)
        >>> usage = policy.extend(beams, 8, Sampling(), seed=0)          # 8 tokens, cache kept for the next call

    Device and dtype: `from_pretrained` picks cuda, then mps, then cpu, with bf16 (or fp16) on accelerators and
    fp32 on cpu. A model passed in directly is used as it is, switched to row-by-row attention (`attention.py`;
    called without its rows it behaves as SDPA).

    Concurrent searches share the model: their `extend` calls become rows of one batch (`engine.py`), at most
    `max_batch_rows` rows (and `max_batch_tokens` cached tokens, when set) at a time; the rest wait for a place.
    By default a step's rows share attention calls. `batch_invariant=True` (or `DARWIN_CHAINS_BATCH_INVARIANT=1`
    for every face) keeps a seeded beam's numbers the same alone or beside any others on CPU, by attending one row
    at a time in steps of at least 4 rows; a lone search then takes about 1.1 times as long (`benchmarks/speed/`).
    """

    supports_continuation = True
    supports_deadline = True  # rows leave the engine's batch at their deadline, within a step or prompt chunk
    supports_json_schema = True  # a prompt's `json_schema` constrains its beams' decoding (`grammar.py`)
    continues_json_schema = True  # each row's matcher state travels with its beam, adoption included

    def __init__(self, model: Any, tokenizer: Any, *, chat_template: str | None = None, name: str | None = None,
                 max_batch_rows: int = 64, max_batch_tokens: int | None = None, batch_invariant: bool | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        if chat_template is None and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"tokenizer of {self._model_name()} has no chat template; pass chat_template='...' (a Jinja template)"
            )
        self.name = name or self._model_name()
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids, default=0)
        try:
            use_row_attention(self.model)
        except (ValueError, NotImplementedError) as exc:
            raise ConfigError(f"{self.name} cannot take a custom attention implementation ({exc}); HFPolicy needs a "
                              "transformers model that supports `set_attn_implementation`") from exc
        # Batch invariance (a seeded beam's numbers the same alone or beside any others) is a switch: it holds on
        # CPU, and costs a lone search's tail of few rows two to three times the time per step (attention.py).
        self.batch_invariant = batch_invariance(batch_invariant)
        self.engine = Engine(self.model, eos_ids=self.eos_ids, pad_id=self.pad_id, max_context=self.max_context,
                             max_batch_rows=max_batch_rows, max_batch_tokens=max_batch_tokens, name=self.name,
                             batch_invariant=self.batch_invariant)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, device: str | None = None, dtype: Any = None, max_batch_rows: int = 64,
        max_batch_tokens: int | None = None, batch_invariant: bool | None = None, **model_kwargs: Any
    ) -> HFPolicy:
        """Load a model directory (or hub id, where a hub is reachable) with a sensible device and dtype;
        `model_kwargs` go to transformers' `from_pretrained`."""
        import torch

        device = device or default_device()
        dtype = dtype or default_dtype(device)
        with LOCK:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **model_kwargs).to(torch.device(device))
        return cls(model, tokenizer, max_batch_rows=max_batch_rows, max_batch_tokens=max_batch_tokens,
                   batch_invariant=batch_invariant)

    @property
    def device(self):
        return self.model.device

    @property
    def max_context(self) -> int | None:
        limits = [getattr(self.model.config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        limits = [n for n in limits if isinstance(n, int) and 0 < n < 10**7]
        return min(limits) if limits else None

    def _model_name(self) -> str:
        return Path(str(getattr(self.model, "name_or_path", "") or type(self.model).__name__)).name

    # -- the Policy protocol -------------------------------------------------------------------------------------

    def encode(self, prompt: Prompt) -> tuple[int, ...]:
        """The chat-templated prompt as token ids, ready for the assistant's reply."""
        return _encode(self.tokenizer, self.chat_template, prompt.messages)

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        beams = []
        for prompt in prompts:
            ids = self.encode(prompt)
            limit = self.max_context
            if limit is not None and len(ids) + max_new_tokens > limit:
                raise InputError(
                    f"prompt has {len(ids):,} tokens and up to {max_new_tokens:,} new tokens were asked for, but "
                    f"{self.name}'s context window is {limit:,} tokens; shorten the conversation or lower max_new_tokens"
                )
            constraint = self.grammar.constraint(prompt.json_schema, max_new_tokens) if prompt.json_schema else None
            beams.append(Beam(prompt=prompt, state=State(ids, [], constraint=constraint)))
        return beams

    @cached_property
    def grammar(self) -> JsonGrammar:
        """Matchers for constrained decoding, built on first use (the token trie takes about 0.3 s)."""
        return JsonGrammar(self.tokenizer, self.eos_ids)

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        own, theirs = beam.state, donor.state
        if donor.finished:
            state = State(own.prompt_ids, list(theirs.response_ids), finished=True)
        elif own.prompt_ids == theirs.prompt_ids:
            # Same prompt, same context: the donor's cache is valid as it is. Caches are never written in place.
            state = State(own.prompt_ids, list(theirs.response_ids), theirs.cache, theirs.cached)
        else:
            # Keep the cache of our own prompt, and of the start our response shares with the adopted one (a line
            # this beam adopted before); the rest of the adopted response is encoded in the next forward pass.
            shared = len(os.path.commonprefix([own.response_ids, theirs.response_ids]))
            keep = min(own.cached, len(own.prompt_ids) + shared)
            cache = tuple((k[:, :keep], v[:, :keep]) for k, v in own.cache) if own.cache and keep else None
            state = State(own.prompt_ids, list(theirs.response_ids), cache, keep if cache else 0)
        if theirs.constraint is not None:  # the grammar's state goes with the response
            state.constraint = theirs.constraint.copy()
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, state)

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int,
               deadline: float | None = None) -> Usage:
        live = [b for b in beams if not b.finished]
        if not live or max_new_tokens < 1:
            return Usage()
        future = self.engine.submit([b.state for b in live], max_new_tokens, sampling, seed, deadline)
        try:
            return self._finish(live, future.result())
        except BaseException:
            self.engine.cancel(future)
            raise

    async def aextend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int,
                      deadline: float | None = None) -> Usage:
        """`extend` without a thread: the call waits on the engine's future, and cancelling it frees its rows."""
        live = [b for b in beams if not b.finished]
        if not live or max_new_tokens < 1:
            return Usage()
        future = self.engine.submit([b.state for b in live], max_new_tokens, sampling, seed, deadline)
        try:
            return self._finish(live, await wait(future))
        except BaseException:
            self.engine.cancel(future)
            raise

    def _finish(self, live: list[Beam], usage: Usage) -> Usage:
        for beam in live:
            state = beam.state
            beam.tokens = len(state.response_ids)
            beam.response = self.tokenizer.decode(state.response_ids, skip_special_tokens=True)
            beam.finished, beam.finish_reason = state.finished, state.finish_reason
        return usage


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        ids.update([value] if isinstance(value, int) else (value or []))
    return frozenset(ids)


def _encode(tokenizer: Any, template: str | None, messages: tuple) -> tuple[int, ...]:
    encoded = tokenizer.apply_chat_template(
        [dict(m) for m in messages], add_generation_prompt=True, tokenize=True, chat_template=template
    )
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return tuple(int(i) for i in ids)

