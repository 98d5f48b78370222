"""An OpenAI-compatible server (vLLM, TGI, `transformers serve`, OpenAI itself) as a Darwin policy.

Darwin replaces beams every `m` tokens, so the policy must continue a partial response. Three ways to ask a server,
best first:

- "completions": the prompt is chat-templated here with the model's tokenizer, the partial response is appended as
  the model wrote it, and the completions endpoint continues it by `m` tokens. Any server with /v1/completions.
- "chat-continue": chat completions with the partial response as a final assistant message and
  `continue_final_message` (vLLM's extension). Detected with a one-token probe; a 400/422 means unsupported.
- "chat": plain chat completions. Nothing can be continued, so `supports_continuation` is False and the search
  runs at response granularity: every beam is one whole answer and no replacement happens (the trace says so).

Requests run concurrently (at most `max_concurrency` in flight), beams that share a prompt and have no response yet
share one request with `n` choices where the server honours `n`, every request carries its own seed, and token
counts come from the server's `usage`. Retries and timeouts follow one `RetryPolicy`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import Sampling
from ..errors import ConfigError, InputError, PolicyError, require
from ..prompt import Prompt
from ..protocols import Beam, Usage
from .retry import RetryPolicy
from . import chat_template

log = logging.getLogger(__name__)

Mode = Literal["auto", "completions", "chat-continue", "chat"]
MODES = ("auto", "completions", "chat-continue", "chat")


@dataclass
class Reply:
    """One choice of a server reply: its text, why it ended, and the top log-probabilities per token (if sent)."""

    text: str
    finish_reason: str | None
    top_logprobs: list[dict[str, float]] | None = None


@dataclass
class _Job:
    """Beams served by one request: several only when they share a prompt and have no response yet (`n`)."""

    beams: list[Beam]
    seeds: list[int]  # per beam: the search's seed plus the beam's index; an `n` request sends the first
    replies: list[Reply] = field(default_factory=list)
    usage: Any = None
    retries: int = 0


class OpenAIPolicy:
    """Darwin's policy over an OpenAI-compatible server, through the official `openai` client.

    Example:
        >>> from darwin_chains import Search, defaults
        >>> policy = OpenAIPolicy.from_url("Qwen/Qwen2.5-7B-Instruct", "http://127.0.0.1:8000/v1",
        ...                                tokenizer="Qwen/Qwen2.5-7B-Instruct")   # completions mode
        >>> Search(policy, defaults.reward(), defaults.mutator()).run("Name three rivers.").answer

    Args:
        client: an `openai.OpenAI` client (base URL, key and headers are yours); its own retries are switched off.
        model: the `model` field of every request.
        async_client: an `openai.AsyncOpenAI` for `aextend`; made from `client`'s settings when not given.
        mode: "completions", "chat-continue", "chat", or "auto": completions when a tokenizer is given, else
            chat-continue when the server accepts it, else chat.
        tokenizer: the model's tokenizer (an object, or a directory or hub id for `AutoTokenizer`), for the chat
            template of completions mode and for the prompt-length check.
        chat_template: a Jinja template to use instead of the tokenizer's.
        max_context: the model's context window in tokens; None when unknown (no length check).
        max_concurrency: requests in flight at once.
        retry: retries, backoff and the per-request timeout.
        extra_body: fields added to every request, for server-specific knobs (e.g. `transformers serve` samples
            only with `{"generation_config": '{"do_sample": true}'}`).
        use_n: serve beams that share a prompt with one `n`-choice request where the server honours `n`.
        send_seed: send a per-request `seed` (seed + beam index).
    """

    def __init__(self, client: Any, model: str, *, async_client: Any = None, mode: Mode = "auto",
                 tokenizer: Any = None, chat_template: str | None = None, max_context: int | None = None,
                 max_concurrency: int = 8, retry: RetryPolicy | None = None, extra_body: dict | None = None,
                 use_n: bool = True, send_seed: bool = True, name: str | None = None):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if mode == "completions" and tokenizer is None:
            raise ConfigError("completions mode templates the chat here: pass tokenizer= (the model's tokenizer or "
                              "its directory)")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.retry = retry or RetryPolicy()
        self.client = client.with_options(max_retries=0, timeout=self.retry.timeout)
        self._given_async = async_client.with_options(max_retries=0, timeout=self.retry.timeout) if async_client else None
        self.model = model
        self.requested_mode = mode
        self._tokenizer = tokenizer
        self.chat_template = chat_template
        self.max_context = max_context
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self.use_n, self.send_seed = use_n, send_seed
        self.name = name or (Path(model).name if "/" in model and Path(model).is_absolute() else model)
        self.base_url = str(client.base_url).rstrip("/")
        self.notes: list[str] = []  # what the policy found out about the server and template, for the trace
        self._mode: str | None = None
        self._n_honoured: bool | None = None
        self._lock = threading.Lock()
        self._async: tuple[Any, Any] | None = None  # (event loop, client): an async client serves one loop

    @classmethod
    def from_url(cls, model: str, base_url: str | None = None, *, api_key: str | None = None,
                 **kwargs: Any) -> OpenAIPolicy:
        """A policy for `model` at `base_url` (default $OPENAI_BASE_URL, else OpenAI); the key comes from
        $OPENAI_API_KEY, or "EMPTY" for servers that want none."""
        openai = require("openai", package="openai")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return cls(openai.OpenAI(base_url=base_url, api_key=key), model, **kwargs)

    # -- capabilities --------------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The way requests are made; "auto" is settled on first use (a one-token probe at most)."""
        if self._mode is None:
            with self._lock:
                if self._mode is None:
                    self._mode = self._detect()
        return self._mode

    @property
    def supports_continuation(self) -> bool:
        return self.mode != "chat"

    @property
    def tokenizer(self) -> Any:
        if isinstance(self._tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer)
        return self._tokenizer

    def _detect(self) -> str:
        mode = self.requested_mode
        rewrite = None
        if self._tokenizer is not None:
            rewrite = chat_template.rewrites(self.tokenizer, self.chat_template)
        if mode == "auto":
            mode = "completions" if self._tokenizer is not None else self._probe_continuation()
        if rewrite and mode == "completions":
            self.notes.append(
                f"the chat template of {self.name} {rewrite}; completions mode renders the prompt with "
                "add_generation_prompt and appends the partial response raw, as the model wrote it, so continuation "
                "is unaffected")
        elif rewrite and mode == "chat-continue":
            mode = "chat"
            self.notes.append(
                f"the chat template of {self.name} {rewrite}, so the server would continue different text from the "
                "one scored: continuation is refused and the search runs at response granularity (use "
                "mode='completions' to continue partial responses)")
        log.info("%s at %s: %s mode", self.name, self.base_url, mode)
        return mode

    def _probe_continuation(self) -> str:
        """Ask for one token continuing a final assistant message; a 400/422 means the server cannot."""
        messages = [{"role": "user", "content": "Reply with OK."}, {"role": "assistant", "content": "O"}]
        try:
            self.retry.call(lambda: self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=1,
                extra_body={**self.extra_body, "continue_final_message": True, "add_generation_prompt": False}),
                self.base_url)
        except PolicyError as exc:
            if getattr(exc, "status", None) not in (400, 422):
                raise
            self.notes.append(
                f"{self.name} at {self.base_url} cannot continue a partial chat response (continue_final_message "
                f"answered {exc.status}), so every beam is one whole chat answer: response granularity")
            return "chat"
        return "chat-continue"

    # -- the Policy protocol -------------------------------------------------------------------------------------

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        mode = self.mode
        beams = []
        for prompt in prompts:
            text = chat_template.render(self.tokenizer, prompt.messages, self.chat_template) \
                if mode == "completions" else None
            if self.max_context is not None and self._tokenizer is not None:
                text_ = text if text is not None else chat_template.render(self.tokenizer, prompt.messages,
                                                                           self.chat_template)
                length = len(self.tokenizer(text_, add_special_tokens=False)["input_ids"])
                if length + max_new_tokens > self.max_context:
                    raise InputError(
                        f"prompt has {length:,} tokens and up to {max_new_tokens:,} new tokens were asked for, but "
                        f"{self.name}'s context window is {self.max_context:,} tokens; shorten the conversation or "
                        "lower max_new_tokens")
            beams.append(Beam(prompt=prompt, state=text))
        return beams

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        # The state is the beam's own templated prompt; the adopted response is appended to it as text.
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, beam.state)

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        live = [b for b in beams if not b.finished]
        usage = Usage()
        jobs = self._jobs(live, seed)
        while jobs:
            with ThreadPoolExecutor(min(self.max_concurrency, len(jobs))) as pool:
                list(pool.map(lambda job: self._send(job, max_new_tokens, sampling), jobs))
            jobs = self._apply(jobs, max_new_tokens, usage)
        return usage

    async def aextend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        live = [b for b in beams if not b.finished]
        usage = Usage()
        if live:
            await asyncio.to_thread(lambda: self.mode)  # a first-use probe must not block the event loop
        jobs = self._jobs(live, seed)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def send(job: _Job) -> None:
            async with limit:
                await self._asend(job, max_new_tokens, sampling)

        while jobs:
            await asyncio.gather(*(send(job) for job in jobs))
            jobs = self._apply(jobs, max_new_tokens, usage)
        return usage

    # -- one-off questions (the judge) ---------------------------------------------------------------------------

    def ask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
            seed: int = 0) -> tuple[Reply, Usage]:
        """One greedy reply to a conversation, continuing `prefix` where the mode allows (ignored in chat mode)."""
        job = _Job([Beam(Prompt.of(list(messages)), prefix, state=self._state(messages))], [seed])
        self._send(job, max_tokens, Sampling(temperature=0), top_logprobs)
        return self._asked(job)

    async def aask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
                   seed: int = 0) -> tuple[Reply, Usage]:
        state = await asyncio.to_thread(self._state, messages)
        job = _Job([Beam(Prompt.of(list(messages)), prefix, state=state)], [seed])
        await self._asend(job, max_tokens, Sampling(temperature=0), top_logprobs)
        return self._asked(job)

    def _state(self, messages: Sequence[dict]) -> str | None:
        return chat_template.render(self.tokenizer, messages, self.chat_template) if self.mode == "completions" else None

    def _asked(self, job: _Job) -> tuple[Reply, Usage]:
        usage = Usage(*_counts(job.usage), requests=1, retries=job.retries)
        if not job.replies:
            raise PolicyError(f"{self.name} at {self.base_url} answered with no choices")
        return job.replies[0], usage

    # -- requests ------------------------------------------------------------------------------------------------

    def _jobs(self, live: list[Beam], seed: int) -> list[_Job]:
        """One job per beam, except that fresh beams with the same prompt share one `n`-choice request."""
        jobs: list[_Job] = []
        shared: dict[Any, _Job] = {}
        for i, beam in enumerate(live):
            key = (tuple(tuple(sorted(m.items())) for m in beam.prompt.messages), beam.state)
            if self.use_n and self._n_honoured is not False and not beam.response and key in shared:
                shared[key].beams.append(beam)
                shared[key].seeds.append(seed + i)
                continue
            job = _Job([beam], [seed + i])
            jobs.append(job)
            if not beam.response:
                shared[key] = job
        return jobs

    def _request(self, job: _Job, max_tokens: int, sampling: Sampling, top_logprobs: int = 0) -> tuple[Any, dict]:
        """The endpoint to call and its arguments."""
        beam, mode = job.beams[0], self.mode
        kwargs: dict[str, Any] = dict(model=self.model, max_tokens=max_tokens, temperature=sampling.temperature)
        if sampling.temperature > 0:
            kwargs["top_p"] = sampling.top_p
        if len(job.beams) > 1:
            kwargs["n"] = len(job.beams)
        if self.send_seed:
            kwargs["seed"] = job.seeds[0]
        extra = dict(self.extra_body)
        if sampling.top_k:
            extra["top_k"] = sampling.top_k  # not in OpenAI's schema; vLLM takes it, others may refuse it
        if mode == "completions":
            kwargs["prompt"] = beam.state + beam.response
            if top_logprobs:
                kwargs["logprobs"] = top_logprobs
            endpoint = self.client.completions
        else:
            messages = [dict(m) for m in beam.prompt.messages]
            if mode == "chat-continue" and beam.response:
                messages.append({"role": "assistant", "content": beam.response})
                extra.update(continue_final_message=True, add_generation_prompt=False)
            kwargs["messages"] = messages
            if top_logprobs:
                kwargs.update(logprobs=True, top_logprobs=top_logprobs)
            endpoint = self.client.chat.completions
        if extra:
            kwargs["extra_body"] = extra
        return endpoint, kwargs

    def _send(self, job: _Job, max_tokens: int, sampling: Sampling, top_logprobs: int = 0) -> None:
        endpoint, kwargs = self._request(job, max_tokens, sampling, top_logprobs)
        reply, job.retries = self.retry.call(lambda: endpoint.create(**kwargs), self.base_url)
        job.replies, job.usage = _replies(reply), reply.usage

    async def _asend(self, job: _Job, max_tokens: int, sampling: Sampling, top_logprobs: int = 0) -> None:
        endpoint, kwargs = self._request(job, max_tokens, sampling, top_logprobs)
        client = self._async_client()
        endpoint = client.completions if endpoint is self.client.completions else client.chat.completions
        reply, job.retries = await self.retry.acall(lambda: endpoint.create(**kwargs), self.base_url)
        job.replies, job.usage = _replies(reply), reply.usage

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._given_async is not None:
            return self._given_async
        if self._async is None or self._async[0] is not loop:
            openai = require("openai", package="openai")
            c = self.client
            self._async = (loop, openai.AsyncOpenAI(base_url=c.base_url, api_key=c.api_key, organization=c.organization,
                                                    project=c.project, default_headers=getattr(c, "_custom_headers", None),
                                                    max_retries=0, timeout=self.retry.timeout))
        return self._async[1]

    def _apply(self, jobs: list[_Job], max_tokens: int, usage: Usage) -> list[_Job]:
        """Write the replies into their beams; beams that an `n` request left without a choice get their own job."""
        leftover: list[_Job] = []
        for job in jobs:
            prompt_tokens, completion_tokens = _counts(job.usage)
            usage.input_tokens += prompt_tokens
            usage.requests += 1
            usage.retries += job.retries
            served = job.beams[: len(job.replies)]
            if len(job.beams) > 1:
                honoured = len(job.replies) >= len(job.beams)
                if self._n_honoured is None and not honoured:
                    self.notes.append(f"{self.name} at {self.base_url} answered {len(job.replies)} choice(s) when "
                                      f"asked for n={len(job.beams)}; beams are requested one at a time")
                self._n_honoured = honoured if self._n_honoured is None else self._n_honoured and honoured
                leftover += [_Job([b], [s]) for b, s in zip(job.beams[len(job.replies):], job.seeds[len(job.replies):])]
            written = 0
            for beam, reply in zip(served, job.replies):
                count = completion_tokens if len(job.beams) == 1 and completion_tokens else self._count(reply.text)
                beam.response += reply.text
                beam.tokens += min(count, max_tokens)
                beam.finished = (not self.supports_continuation or reply.finish_reason != "length"
                                 or not reply.text)
                written += min(count, max_tokens)
            usage.output_tokens += completion_tokens or written
        return leftover

    def _count(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return (len(text) + 3) // 4  # about 4 characters a token when nothing better is known


def _replies(reply: Any) -> list[Reply]:
    """The choices of a completions or chat reply, in order, with top log-probabilities when the server sent them."""
    out = []
    for choice in sorted(reply.choices or [], key=lambda c: c.index or 0):
        message = getattr(choice, "message", None)
        text = message.content if message is not None else choice.text
        out.append(Reply(text or "", choice.finish_reason, _top_logprobs(choice.logprobs)))
    return out


def _top_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    if logprobs is None:
        return None
    content = getattr(logprobs, "content", None)
    if content is not None:  # chat: one entry per token, each with its top alternatives
        return [{alt.token: alt.logprob for alt in (t.top_logprobs or [])} for t in content]
    top = getattr(logprobs, "top_logprobs", None)  # completions: a dict per token
    return [dict(t or {}) for t in top] if top is not None else None


def _counts(usage: Any) -> tuple[int, int]:
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)
