"""A reward model that a server hosts: vLLM's `/classify` scores (conversation, response) pairs, so the reward, half
of Darwin's compute, runs beside the policy on the serving engine instead of in the caller's process.

Each pair is rendered here with the reward model's own chat template and sent as token ids (exactly what
`HFRewardModel` reads, cut in the middle the same way), many pairs per request, and the server returns raw logits
(`use_activation: false`): the score is logit 0, as in process. Retries, timeouts and errors follow the same
`RetryPolicy` as the remote policy.

Serve the model with vLLM's pooling runner, for example:

    python -m vllm.entrypoints.openai.api_server --model Skywork/Skywork-Reward-V2-Llama-3.1-8B --runner pooling
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RewardError, require
from ..loading import LOCK
from ..retry import RetryPolicy
from ..prompt import Prompt
from .hf import conversation_ids


class ServedRewardModel:
    """Scores `(conversation, response)` pairs with a sequence-classification reward model served by vLLM.

    Example:
        >>> reward = ServedRewardModel("skywork", "http://127.0.0.1:8001/v1", tokenizer="/models/skywork")
        >>> reward.score(Prompt.of("Name a prime."), ["7 is prime.", "Bananas."])

    Args:
        model: the `model` field of every request (the server's served model name).
        base_url: the server, as for the policy (`http://host:port/v1`; `/classify` is found beside `/v1`).
        tokenizer: the reward model's tokenizer (an object, or a directory or hub id), whose chat template renders
            each pair; by default `model` itself.
        api_key: sent as a bearer token; by default $OPENAI_API_KEY, else none.
        retry: retries, backoff and the per-request timeout.
        batch_size: pairs per request.
        max_concurrency: requests in flight at once.
        max_length: the longest input in tokens (longer ones are cut in the middle); by default the server's
            `max_model_len`, else the tokenizer's limit.
    """

    def __init__(self, model: str, base_url: str, *, tokenizer: Any = None, api_key: str | None = None,
                 retry: RetryPolicy | None = None, batch_size: int = 64, max_concurrency: int = 4,
                 max_length: int | None = None, name: str | None = None):
        for knob, value in (("batch_size", batch_size), ("max_concurrency", max_concurrency)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{knob} must be a whole number >= 1, got {value!r}")
        if not base_url:
            raise ConfigError("ServedRewardModel needs the server's base_url, e.g. http://127.0.0.1:8001/v1")
        openai = require("openai", package="openai")
        self.model = model
        self.retry = retry or RetryPolicy()
        self.base_url = base_url.rstrip("/")
        self.root = self.base_url.removesuffix("/v1")  # vLLM serves /classify and /tokenize beside /v1
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=self.retry.timeout)
        self._async_client: tuple[Any, Any] | None = None  # (event loop, client)
        self._tokenizer = tokenizer if tokenizer is not None else model
        self.batch_size, self.max_concurrency = batch_size, max_concurrency
        self._max_length = max_length
        self.name = name or (Path(model).name if Path(model).is_absolute() else model)

    # -- what is sent --------------------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        if isinstance(self._tokenizer, (str, Path)):
            with LOCK:
                if isinstance(self._tokenizer, (str, Path)):
                    from transformers import AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(self._tokenizer)
                    if not getattr(tokenizer, "chat_template", None):
                        raise ConfigError(f"the tokenizer of reward model {self.name} has no chat template; give "
                                          "tokenizer= a tokenizer (or directory) that has one")
                    self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def max_length(self) -> int:
        """The longest input: as given, else the server's `max_model_len` (asked once), else the tokenizer's."""
        if self._max_length is None:
            limits = [self._served_length(), getattr(self.tokenizer, "model_max_length", None)]
            self._max_length = min((n for n in limits if isinstance(n, int) and 0 < n < 10 ** 7), default=10 ** 7)
        return self._max_length

    def _served_length(self) -> int | None:
        try:
            models, _ = self.retry.call(lambda: self.client.models.list(), self.base_url, RewardError)
        except RewardError:
            return None  # the first /classify request will say what is wrong
        lengths = [getattr(m, "max_model_len", None) for m in models.data if m.id == self.model]
        return lengths[0] if lengths else None

    def encode(self, prompt: Prompt, response: str) -> list[int]:
        """Token ids of the scored text, as `HFRewardModel.encode` writes them."""
        return conversation_ids(self.tokenizer, prompt, response, self.max_length)

    def _body(self, batch: list[list[int]]) -> dict[str, Any]:
        return {"model": self.model, "input": batch, "use_activation": False, "add_special_tokens": False}

    # -- the Reward protocol -------------------------------------------------------------------------------------

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        batches = self._batches(prompt, responses)
        if len(batches) == 1:
            return self._scores(batches[0], self._post(batches[0]))
        with ThreadPoolExecutor(min(self.max_concurrency, len(batches))) as pool:
            replies = list(pool.map(self._post, batches))
        return [s for batch, reply in zip(batches, replies) for s in self._scores(batch, reply)]

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        batches = await asyncio.to_thread(self._batches, prompt, responses)
        limit = asyncio.Semaphore(self.max_concurrency)
        client = self._async()

        async def post(batch: list[list[int]]) -> Any:
            async with limit:
                reply, _ = await self.retry.acall(
                    lambda: client.post(f"{self.root}/classify", cast_to=object, body=self._body(batch)),
                    self.root, RewardError)
                return reply

        replies = await asyncio.gather(*(post(b) for b in batches))
        return [s for batch, reply in zip(batches, replies) for s in self._scores(batch, reply)]

    def _batches(self, prompt: Prompt, responses: Sequence[str]) -> list[list[list[int]]]:
        encoded = [self.encode(prompt, r) for r in responses]
        return [encoded[i : i + self.batch_size] for i in range(0, len(encoded), self.batch_size)]

    def _post(self, batch: list[list[int]]) -> Any:
        reply, _ = self.retry.call(
            lambda: self.client.post(f"{self.root}/classify", cast_to=object, body=self._body(batch)),
            self.root, RewardError)
        return reply

    def _scores(self, batch: list[list[int]], reply: Any) -> list[float]:
        """Logit 0 of each pair, in the order sent (the server numbers its answers by `index`)."""
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list) or len(data) != len(batch):
            raise RewardError(f"reward model {self.name} at {self.root}/classify answered "
                              f"{len(data) if isinstance(data, list) else 'no'} scores for {len(batch)} pairs: "
                              f"{str(reply)[:200]}")
        try:
            return [float(item["probs"][0]) for item in sorted(data, key=lambda item: item["index"])]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RewardError(f"reward model {self.name} at {self.root}/classify answered without raw scores "
                              f"(data[].probs): {str(reply)[:200]}") from exc

    def _async(self) -> Any:
        """An `openai.AsyncOpenAI` with the sync client's settings, per event loop."""
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            openai = require("openai", package="openai")
            c = self.client
            self._async_client = (loop, openai.AsyncOpenAI(base_url=c.base_url, api_key=c.api_key, max_retries=0,
                                                           timeout=self.retry.timeout))
        return self._async_client[1]
