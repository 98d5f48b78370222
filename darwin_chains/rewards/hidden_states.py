"""SmolLM2's middle-layer hidden states as features of a response, read in the context of its instruction.

A causal LM's hidden state at a response token already depends on the instruction before it, so the mean over the
response's tokens says how the response relates to what was asked, not only what it is about. Layer 15 of 30 ranked
GPT-4 Turbo's preferences better than the last layer (benchmarks/reward/runs/backbone-cut128/), and stopping there
halves the cost: the model is loaded with its first 15 layers only. Because the model is causal, one forward pass
gives the means of every prefix too (`encode(..., cuts=(40, 80))`), which is how training sees partial answers.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

LAYER = 15
MAX_PROMPT_TOKENS = 160


class ResponseEncoder:
    """Mean hidden state after `layer` decoder layers over the first `max_response_tokens` response tokens.

    The instruction is framed by the model's chat template, as the policy frames it, and cut from the left to
    `max_prompt_tokens`. Runs in the dtype the CPU computes fastest (`devices.feature_dtype`): fp32 without
    native bf16, bf16 with it. The head was trained on bf16 features and agrees as well on fp32 ones: within
    0.3 points on every validation figure (benchmarks/reward/runs/heads-fp32).
    """

    def __init__(self, path: str | Path | None = None, layer: int = LAYER, max_response_tokens: int = 256,
                 max_prompt_tokens: int = MAX_PROMPT_TOKENS):
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from ..devices import feature_dtype
        from ..embedded import smollm2_dir

        path = Path(path) if path is not None else smollm2_dir()
        self.torch, self.layer = torch, layer
        self.max_response_tokens, self.max_prompt_tokens = max_response_tokens, max_prompt_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        # Quietly: the dropped upper layers are reported as unexpected weights, and a reward loading mid-search
        # should not draw a progress bar over the search's own.
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self.model = AutoModel.from_pretrained(path, num_hidden_layers=layer, dtype=feature_dtype()).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        self.model.norm = torch.nn.Identity()  # the features are the residual stream itself, not its final norm
        self.dim = self.model.config.hidden_size
        self._lock = threading.Lock()  # one call at a time: torch already uses every core, and the tokenizer is shared
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

    def _instruction_mean(self, instruction: str) -> np.ndarray:
        """Mean hidden state over the instruction's own tokens (not the template's): what the response should be
        about. Called as `instruction(text)`, cached."""
        with self._lock, self.torch.inference_mode():
            ids, start, end = self._prompt(instruction)
            hidden = self.model(input_ids=self.torch.tensor([ids])).last_hidden_state[0].float()
        return hidden[start:end].mean(0).numpy()

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


@lru_cache(maxsize=2)
def shared_encoder(path: str | None = None, max_response_tokens: int = 256) -> ResponseEncoder:
    """One encoder per process: rewards built for concurrent searches share its weights."""
    return ResponseEncoder(path, max_response_tokens=max_response_tokens)


__all__ = ["ResponseEncoder", "shared_encoder", "LAYER"]
