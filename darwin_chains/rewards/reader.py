"""A reader for values taken from the wrong place: SmolLM2 reads the prompt, context included, then an answer.

The lookup in `grounding.py` finds a value the context never gives. It cannot see a value the context gives for
something else: "opens at 9 AM on weekdays", when the notes say "7:15 AM every weekday and 9 AM on weekends",
has every word in the context. A causal LM that has just read the context copies the value that belongs where the
answer states it (in-context copying works in models far smaller than this one), so the log-probability it gives
the answer's own value, against its favourite next token, tells the two apart: the reader's `doubt` about a value
is how many nats its likeliest token beats the value's least likely token by (0 when it would have written it).

On the grounding benchmark (benchmarks/grounding/README.md) the doubt alone ranks the true value over a value
swapped in from the same passage in 36 of 42 cases, and over a value from nowhere in 158 of 160.

Each answer sentence is read on its own after the prompt, one at a time and from the same cached prompt, so its
doubts are a function of the prompt and the sentence alone: the same whether a search runs alone or beside
others, read fresh or from the cache. Darwin rescores the same sentences every period; they are read once.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..devices import feature_dtype
from ..loading import LOCK, load_once, quiet_transformers
from ..modeling.threads import borrowed_threads
from ..prompt import Prompt

PROMPTS = 8  # prompts whose key/value cache is kept (Darwin scores one prompt for the whole search)
SENTENCES = 4096  # sentences whose doubts are kept
MAX_PROMPT_TOKENS = 4096  # longer prompts are cut from the left: the request and the nearest context stay


class Reader:
    """`doubts(prompt, sentence, spans)`: for each (start, end) character span of `sentence`, how many nats the
    reader's likeliest token beats that value's least likely token by, after reading the prompt and the sentence up
    to it. Runs in `dtype` (`devices.feature_dtype`: fp32 unless asked otherwise)."""

    def __init__(self, path: str | Path | None = None, dtype: Any = None):
        import torch

        from ..embedded import smollm2_dir

        self.torch, self.dtype = torch, feature_dtype(dtype)
        path = Path(path) if path is not None else smollm2_dir()
        with LOCK, quiet_transformers():
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype).eval()
        self._lock = threading.Lock()  # one forward pass at a time: each appends to, then crops, a shared cache
        self._prompts: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
        self._doubts: OrderedDict[tuple, list[float]] = OrderedDict()
        self.tokens_read = 0  # tokens fed to the model (tests, benchmarks)

    @borrowed_threads()
    def doubts(self, prompt: Prompt, sentence: str, spans: Sequence[tuple[int, int]]) -> list[float]:
        if not spans:
            return []
        key = (_key(prompt), sentence, tuple(spans))
        with self._lock:
            if (found := self._doubts.get(key)) is None:
                found = self._doubts[key] = self._read(prompt, sentence, spans)
                while len(self._doubts) > SENTENCES:
                    self._doubts.popitem(last=False)
            return found

    def _read(self, prompt: Prompt, sentence: str, spans: Sequence[tuple[int, int]]) -> list[float]:
        torch = self.torch
        cache, last = self._prompt(prompt)
        encoded = self.tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids]), cache=cache).logits[0]
        cache.crop(-len(ids))  # back to the prompt alone, for the next sentence
        self.tokens_read += len(ids)
        # The prediction for token i comes from the position before it: the prompt's last one for the first token.
        logp = torch.cat([last[None], logits[:-1]]).float().log_softmax(-1)
        doubt = (logp.max(-1).values - logp.gather(1, torch.tensor(ids)[:, None])[:, 0]).tolist()
        out = []
        for start, end in spans:
            inside = [d for d, (a, b) in zip(doubt, offsets) if a < end and b > start and sentence[a:b].strip()]
            out.append(max(inside, default=0.0))
        return out

    def _prompt(self, prompt: Prompt) -> tuple[Any, Any]:
        """The prompt's key/value cache and its last position's logits, read once per prompt."""
        key = _key(prompt)
        if (found := self._prompts.get(key)) is not None:
            self._prompts.move_to_end(key)
            return found
        torch = self.torch
        from transformers import DynamicCache

        ids = self.tokenizer.apply_chat_template(list(prompt.messages), add_generation_prompt=True, tokenize=True,
                                                 return_dict=False)
        ids = list(ids)[-MAX_PROMPT_TOKENS:]
        cache = DynamicCache()
        with torch.inference_mode():
            logits = self.model(torch.tensor([ids]), cache=cache).logits[0, -1]
        self.tokens_read += len(ids)
        self._prompts[key] = found = (cache, logits)
        while len(self._prompts) > PROMPTS:
            self._prompts.popitem(last=False)
        return found


def _key(prompt: Prompt) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in prompt.messages)


def shared_reader(path: str | None = None, dtype: Any = None) -> Reader:
    """One reader per process and dtype: the groundedness checks of concurrent searches share its weights."""
    return _shared_reader(path, feature_dtype(dtype))


@load_once
def _shared_reader(path: str | None, dtype: Any) -> Reader:
    return Reader(path, dtype=dtype)


__all__ = ["Reader", "shared_reader"]
