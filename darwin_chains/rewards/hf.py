"""A Hugging Face sequence-classification reward model (FsfairX / Skywork style) as a Darwin reward."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..modeling.threads import borrowed_threads
from ..prompt import Prompt
from .coalesce import Coalescer


class HFRewardModel:
    """Scores `(conversation, response)` with the reward model's own chat template; the score is logit 0.

    Long inputs are cut in the middle: the start of the conversation and the END of the response are kept, because
    Darwin compares responses that differ in their latest tokens.

    Concurrent calls (searches running at once) are merged into one pass, sorted by length into batches of
    `batch_size`; a score can differ in its last bits with the rows it was padded beside. Every call reads each
    response whole: the score is read at the last token, and a long input's cut moves with every period, so a
    cache of what was read before would rarely apply.

    Example:
        >>> reward = HFRewardModel.from_pretrained("sfairXC/FsfairX-LLaMA3-RM-v0.1")
        >>> reward.score(Prompt.of("Name a prime."), ["7 is prime.", "Bananas."])
    """

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int | None = None, batch_size: int = 8,
                 name: str | None = None):
        if getattr(model.config, "num_labels", 1) < 1:
            raise ConfigError("reward model must have at least one output label")
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"tokenizer of reward model {name or model.name_or_path} has no chat template")
        self.model = model.eval()
        self.tokenizer = tokenizer
        limits = [max_length, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
        self.max_length = min(n for n in limits if isinstance(n, int) and 0 < n < 10**7)
        self.batch_size = batch_size
        self.pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id
        self.name = name or Path(str(model.name_or_path or "reward-model")).name
        self._lock = threading.Lock()
        self._coalescer: Coalescer = Coalescer(self._score_all)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None, dtype: Any = None, **kwargs: Any
                        ) -> HFRewardModel:
        import torch

        from ..devices import default_device, default_dtype
        from ..loading import LOCK

        device = device or default_device()
        with LOCK:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype or default_dtype(device))
            tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model.to(torch.device(device)), tokenizer, **kwargs)

    def encode(self, prompt: Prompt, response: str) -> list[int]:
        """Token ids of the scored text, cut in the middle when too long."""
        return conversation_ids(self.tokenizer, prompt, response, self.max_length)

    @property
    def passes(self) -> int:
        """Passes run: concurrent calls merged into one count once."""
        return self._coalescer.passes

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return self._coalescer([(prompt, r) for r in responses]) if responses else []

    @borrowed_threads()
    def _score_all(self, items: list[tuple[Prompt, str]]) -> list[float]:
        """One pass for every queued call's responses, shortest first (less padding)."""
        import torch

        with self._lock, torch.inference_mode():
            encoded = [self.encode(prompt, r) for prompt, r in items]
            order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
            scores = [0.0] * len(encoded)
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for i, s in zip(chunk, self._score_batch([encoded[i] for i in chunk])):
                    scores[i] = s
        return scores

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return await asyncio.to_thread(self.score, prompt, responses)

    def _score_batch(self, batch: list[list[int]]) -> list[float]:
        import torch

        # The model pools at the last token that is not padding. A sequence that ends with the pad id itself
        # (pad == eos is common) would be pooled too early in a padded batch, so it is scored alone.
        if len(batch) > 1 and (self.pad_id is None or any(ids[-1] == self.pad_id for ids in batch)):
            return [s for ids in batch for s in self._score_batch([ids])]
        width = max(map(len, batch))
        input_ids = torch.full((len(batch), width), self.pad_id if self.pad_id is not None else 0, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for r, ids in enumerate(batch):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            mask[r, : len(ids)] = 1
        logits = self.model(input_ids=input_ids.to(self.model.device), attention_mask=mask.to(self.model.device)).logits
        return logits[:, 0].float().tolist()


def conversation_ids(tokenizer: Any, prompt: Prompt, response: str, max_length: int) -> list[int]:
    """What a reward model reads: the prompt's conversation and the response as the assistant's turn, in the
    model's own chat template, as token ids. A longer one than `max_length` is cut in the middle: the start of the
    conversation and the END of the response are kept, because Darwin compares responses that differ in their
    latest tokens."""
    messages = [dict(m) for m in prompt.messages]
    head = _ids(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True))
    full = _ids(tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=True))
    if len(full) <= max_length:
        return full
    keep_head = min(len(head), max_length // 2)
    return full[:keep_head] + full[len(full) - (max_length - keep_head):]


def _ids(encoded: Any) -> list[int]:
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
