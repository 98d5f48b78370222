"""`OpenAIPolicy`: the Policy protocol over an OpenAI-compatible server (see the package docstring)."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from ...config import Sampling
from ...errors import ConfigError, InputError, PolicyError, require
from ...loading import LOCK
from ...prompt import Prompt
from ...protocols import SEARCH_SESSION, Beam, Reply, Reported, Usage
from .. import chat_template
from ...retry import RetryPolicy
from . import modes, tokens, transport
from .transport import Job, Tokens

Mode = Literal["auto", "tokens", "completions", "chat-continue", "chat"]
MODES = ("auto", "tokens", "completions", "chat-continue", "chat")


class OpenAIPolicy:
    """Darwin's policy over an OpenAI-compatible server, through the official `openai` client.

    Example:
        >>> from darwin_chains import Search, defaults
        >>> policy = OpenAIPolicy.from_url("Qwen/Qwen2.5-7B-Instruct", "http://127.0.0.1:8000/v1",
        ...                                tokenizer="Qwen/Qwen2.5-7B-Instruct")   # completions mode
        >>> Search(policy, defaults.reward(), defaults.mutator()).run("Name three rivers.").answer

    What it finds out about the server (its mode, a chat template that rewrites answers, `n` ignored) comes back
    as `Usage.notes` of the calls it concerns, so each search's trace says it; `notes` lists all of it.

    Args:
        client: an `openai.OpenAI` client (base URL, key and headers are yours); its own retries are switched off.
        model: the `model` field of every request.
        async_client: an `openai.AsyncOpenAI` for `aextend`; made from `client`'s settings when not given.
        mode: "tokens", "completions", "chat-continue", "chat", or "auto": tokens when the server tokenizes chats
            and returns token ids (vLLM), else completions when a tokenizer is given, else chat-continue when the
            server accepts it, else chat.
        tokenizer: the model's tokenizer (an object, or a directory or hub id for `AutoTokenizer`), for the chat
            template of completions mode and for the prompt-length check.
        chat_template: a Jinja template to use instead of the tokenizer's.
        max_context: the model's context window in tokens; None when unknown (no length check).
        max_concurrency: requests in flight at once.
        retry: retries, backoff and the per-request timeout.
        extra_body: fields added to every request, for server-specific knobs (e.g. `transformers serve` samples
            only with `{"generation_config": '{"do_sample": true}'}`).
        use_n: serve beams that share a prompt with one `n`-choice request where the server honours `n`.
        send_seed: send a per-request `seed` (seed + beam index). A vLLM CPU server started with chunked prefill
            (its default) crashes on seeded requests: start it with `--no-enable-chunked-prefill`, or set False.
        session_header: the HTTP header that carries each search's session key (the same on every request of one
            search, so a router can keep them on one replica); None sends none.
    """

    def __init__(self, client: Any, model: str, *, async_client: Any = None, mode: Mode = "auto",
                 tokenizer: Any = None, chat_template: str | None = None, max_context: int | None = None,
                 max_concurrency: int = 8, retry: RetryPolicy | None = None, extra_body: dict | None = None,
                 use_n: bool = True, send_seed: bool = True, session_header: str | None = "X-Session-ID",
                 name: str | None = None):
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if mode == "completions" and tokenizer is None:
            raise ConfigError("completions mode templates the chat here: pass tokenizer= (the model's tokenizer or "
                              "its directory)")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.retry = retry or RetryPolicy()
        self.client = client.with_options(max_retries=0, timeout=self.retry.timeout)
        given = async_client.with_options(max_retries=0, timeout=self.retry.timeout) if async_client else None
        self._async = transport.AsyncClients(self.client, given, self.retry.timeout)
        self.model = model
        self.requested_mode = mode
        self._tokenizer = tokenizer
        self.chat_template = chat_template
        self.max_context = max_context
        self.max_concurrency = max_concurrency
        self.extra_body = dict(extra_body or {})
        self.use_n, self.send_seed, self.session_header = use_n, send_seed, session_header
        self.name = name or (Path(model).name if "/" in model and Path(model).is_absolute() else model)
        self.base_url = str(client.base_url).rstrip("/")
        self.root = self.base_url.removesuffix("/v1")  # where vLLM serves /tokenize
        self._mode: str | None = None
        self._mode_notes: list[str] = []
        self._n_honoured: bool | None = None
        self._n_note: str | None = None
        self._lock = threading.Lock()

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
                    mode, self._mode_notes = modes.negotiate(self)
                    self._mode = mode
        return self._mode

    @property
    def supports_continuation(self) -> bool:
        return self.mode != "chat"

    supports_deadline = True  # each request times out by the search's deadline, and none is sent past it
    # A prompt's `json_schema` goes to the server as `response_format` (vLLM's structured outputs); the server's
    # grammar restarts with every request, so constrained beams are decoded whole (response granularity).
    supports_json_schema = True
    continues_json_schema = False

    def health(self, timeout: float = 2.0) -> str | None:
        """None when the server answers (`GET /models` within `timeout` s; a 404 counts, the server is there),
        else what is wrong: for a readiness check (`serve`'s /ready)."""
        openai = require("openai", package="openai")
        try:
            self.client.with_options(timeout=timeout, max_retries=0).models.list()
        except openai.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            return f"policy {self.name}: {self.retry.failure(exc, self.base_url, 1, PolicyError)}"
        return None

    @property
    def notes(self) -> list[str]:
        """Everything found out about the server and template so far, for inspection (searches get theirs from
        the calls' `Usage.notes`)."""
        return [*self._mode_notes, *([self._n_note] if self._n_note else [])]

    @property
    def has_tokenizer(self) -> bool:
        return self._tokenizer is not None

    @property
    def tokenizer(self) -> Any:
        if isinstance(self._tokenizer, (str, Path)):
            with LOCK:  # concurrent first calls load it once, and transformers' lazy imports never race
                if isinstance(self._tokenizer, (str, Path)):
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer)
        return self._tokenizer

    def headers(self) -> dict[str, str] | None:
        """The running search's session key as an HTTP header, when there is one to send. Read it in the
        search's own thread: a worker thread does not see the search's context."""
        key = SEARCH_SESSION.get()
        return {self.session_header: key} if key and self.session_header else None

    def prompt_ids(self, messages: Sequence[dict], prefix: str = "", headers: dict | None = None) -> list[int]:
        """The server's own token ids for a chat, templated with the generation prompt (tokens mode), then those
        of `prefix`, a start of the answer. The server also says its context window, when none was given."""
        ids = []
        if messages:
            body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages],
                                    "add_generation_prompt": True}
            if self.chat_template:
                body["chat_template"] = self.chat_template
            ids = self._tokenize(body, headers)
        if prefix:
            ids += self._tokenize({"model": self.model, "prompt": prefix, "add_special_tokens": False}, headers)
        return ids

    def tokenize(self, body: dict[str, Any], headers: dict | None = None) -> Any:
        """The server's raw answer to `POST /tokenize` (beside /v1, as vLLM serves it)."""
        options = {"headers": headers} if headers else {}
        reply, _ = self.retry.call(lambda: self.client.post(f"{self.root}/tokenize", cast_to=object, body=body,
                                                            options=options), self.root)
        return reply

    def _tokenize(self, body: dict[str, Any], headers: dict | None) -> list[int]:
        reply = self.tokenize(body, headers)
        if not isinstance(reply, dict) or not isinstance(reply.get("tokens"), list):
            raise PolicyError(f"{self.name} at {self.root}/tokenize answered without token ids: {str(reply)[:200]}")
        if self.max_context is None and isinstance(reply.get("max_model_len"), int):
            self.max_context = reply["max_model_len"]
        return list(reply["tokens"])

    # -- the Policy protocol -------------------------------------------------------------------------------------

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> Reported:
        mode = self.mode
        if mode == "tokens":
            headers = self.headers()
            with ThreadPoolExecutor(min(self.max_concurrency, len(prompts) or 1)) as pool:
                states = list(pool.map(lambda p: Tokens(self.prompt_ids(p.messages, headers=headers)), prompts))
        else:
            states = [self._render(p.messages) if mode == "completions" else None for p in prompts]
        for prompt, state in zip(prompts, states):
            self._check_length(prompt, state, max_new_tokens)
        return Reported([Beam(prompt=p, state=state) for p, state in zip(prompts, states)],
                        Usage(notes=list(self._mode_notes)))

    def _check_length(self, prompt: Prompt, state: Any, max_new_tokens: int) -> None:
        if self.max_context is None or not (isinstance(state, Tokens) or self.has_tokenizer):
            return
        length = (len(state.prompt) if isinstance(state, Tokens) else
                  tokens.count(self.tokenizer, state if state is not None else self._render(prompt.messages)))
        if length + max_new_tokens > self.max_context:
            raise InputError(
                f"prompt has {length:,} tokens and up to {max_new_tokens:,} new tokens were asked for, but "
                f"{self.name}'s context window is {self.max_context:,} tokens; shorten the conversation or "
                "lower max_new_tokens")

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        # The state keeps the beam's own prompt (templated text, or token ids) and takes the donor's response: in
        # tokens mode its exact token ids, so the next period continues the very tokens the reward scored.
        state = Tokens(beam.state.prompt, list(donor.state.response)) if isinstance(beam.state, Tokens) else beam.state
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, state)

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int,
               deadline: float | None = None) -> Usage:
        """A request per beam (or per `n` of fresh beams), each timed out by `deadline` at the latest: a beam whose
        request the deadline cut short keeps what it had."""
        live = [b for b in beams if not b.finished]
        usage = Usage()
        jobs = self._jobs(live, seed)
        headers = self.headers()  # here: the pool's threads do not see the search's context

        def send(job: Job) -> None:
            timeout = self.retry.timeout_until(deadline) if deadline is not None else None
            transport.send(self.retry, self.base_url, job, *self._request(job, max_new_tokens, sampling,
                                                                          timeout=timeout, headers=headers), deadline)

        while jobs and not _past(deadline):
            with ThreadPoolExecutor(min(self.max_concurrency, len(jobs))) as pool:
                list(pool.map(send, jobs))
            jobs = self._apply([j for j in jobs if not j.late], max_new_tokens, usage)
        return usage

    async def aextend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int,
                      deadline: float | None = None) -> Usage:
        live = [b for b in beams if not b.finished]
        usage = Usage()
        if live:
            await asyncio.to_thread(lambda: self.mode)  # a first-use probe must not block the event loop
        jobs = self._jobs(live, seed)
        limit = asyncio.Semaphore(self.max_concurrency)

        async def send(job: Job) -> None:
            async with limit:
                timeout = self.retry.timeout_until(deadline) if deadline is not None else None
                await transport.asend(self.retry, self.base_url, job, *self._request(
                    job, max_new_tokens, sampling, client=self._async.get(), timeout=timeout,
                    headers=self.headers()), deadline)

        while jobs and not _past(deadline):
            await asyncio.gather(*(send(job) for job in jobs))
            jobs = self._apply([j for j in jobs if not j.late], max_new_tokens, usage)
        return usage

    # -- one-off questions (the `Asking` capability, for a judge) ------------------------------------------------

    def ask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
            seed: int = 0) -> tuple[Reply, Usage]:
        """One greedy reply to a conversation, continuing `prefix` where the mode allows (ignored in chat mode)."""
        job = Job([Beam(Prompt.of(list(messages)), prefix, state=self._state(messages, prefix))], [seed])
        transport.send(self.retry, self.base_url, job,
                       *self._request(job, max_tokens, Sampling(temperature=0), top_logprobs,
                                      headers=self.headers()))
        return self._asked(job)

    async def aask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
                   seed: int = 0) -> tuple[Reply, Usage]:
        state = await asyncio.to_thread(self._state, messages, prefix)  # to_thread keeps the search's context
        job = Job([Beam(Prompt.of(list(messages)), prefix, state=state)], [seed])
        await transport.asend(self.retry, self.base_url, job, *self._request(
            job, max_tokens, Sampling(temperature=0), top_logprobs, client=self._async.get(), headers=self.headers()))
        return self._asked(job)

    def _state(self, messages: Sequence[dict], prefix: str = "") -> Any:
        if self.mode == "tokens":
            headers = self.headers()
            return Tokens(self.prompt_ids(messages, headers=headers),
                          self.prompt_ids([], prefix, headers) if prefix else [])
        return self._render(messages) if self.mode == "completions" else None

    def _render(self, messages: Sequence[dict]) -> str:
        return chat_template.render(self.tokenizer, messages, self.chat_template)

    def _asked(self, job: Job) -> tuple[Reply, Usage]:
        usage = Usage(*tokens.server_counts(job.usage), requests=1, retries=job.retries, notes=list(self._mode_notes))
        if not job.replies:
            raise PolicyError(f"{self.name} at {self.base_url} answered with no choices")
        return job.replies[0], usage

    # -- requests ------------------------------------------------------------------------------------------------

    def _jobs(self, live: list[Beam], seed: int) -> list[Job]:
        """One job per beam, except that fresh beams with the same prompt share one `n`-choice request."""
        jobs: list[Job] = []
        shared: dict[Any, Job] = {}
        for i, beam in enumerate(live):
            state = beam.state.key() if isinstance(beam.state, Tokens) else beam.state
            key = (tuple(tuple(sorted(m.items())) for m in beam.prompt.messages), state)
            could_share = self.use_n and not beam.response and key in shared
            if could_share and self._n_honoured is not False:
                shared[key].beams.append(beam)
                shared[key].seeds.append(seed + i)
                continue
            job = Job([beam], [seed + i], alone=bool(could_share))
            jobs.append(job)
            if not beam.response:
                shared[key] = job
        return jobs

    def _request(self, job: Job, max_tokens: int, sampling: Sampling, top_logprobs: int = 0, *,
                 client: Any = None, timeout: float | None = None, headers: dict | None = None) -> tuple[Any, dict]:
        """The endpoint to call (of `client`, by default the sync one) and its arguments."""
        return transport.request(client or self.client, self.model, self.mode, job, max_tokens, sampling,
                                 extra_body=self.extra_body, send_seed=self.send_seed, top_logprobs=top_logprobs,
                                 timeout=timeout, headers=headers)

    def _apply(self, jobs: list[Job], max_tokens: int, usage: Usage) -> list[Job]:
        """Write the replies into their beams; beams that an `n` request left without a choice get their own job."""
        leftover: list[Job] = []
        for job in jobs:
            prompt_tokens, completion_tokens = tokens.server_counts(job.usage)
            usage.input_tokens += prompt_tokens
            usage.requests += 1
            usage.retries += job.retries
            served = job.beams[: len(job.replies)]
            if len(job.beams) > 1:
                honoured = len(job.replies) >= len(job.beams)
                if self._n_honoured is None and not honoured:
                    self._n_note = (f"{self.name} at {self.base_url} answered {len(job.replies)} choice(s) when "
                                    f"asked for n={len(job.beams)}; beams are requested one at a time")
                self._n_honoured = honoured if self._n_honoured is None else self._n_honoured and honoured
                leftover += [Job([b], [s]) for b, s in zip(job.beams[len(job.replies):], job.seeds[len(job.replies):])]
            unserved = len(job.beams) > 1 and len(job.replies) < len(job.beams)
            if (job.alone or unserved) and self._n_note and self._n_note not in usage.notes:
                usage.notes.append(self._n_note)
            written = 0
            for beam, reply in zip(served, job.replies):
                if isinstance(beam.state, Tokens) and reply.token_ids is not None:
                    beam.state.response += reply.token_ids
                    count = len(reply.token_ids)
                else:
                    count = completion_tokens if len(job.beams) == 1 and completion_tokens else self._count(reply.text)
                beam.response += reply.text
                beam.tokens += min(count, max_tokens)
                beam.finished = (not self.supports_continuation or reply.finish_reason != "length"
                                 or not reply.text)
                if beam.finished and reply.finish_reason == "length":
                    beam.finish_reason = "length"
                written += min(count, max_tokens)
            usage.output_tokens += completion_tokens or written
        return leftover

    def _count(self, text: str) -> int:
        return tokens.count(self.tokenizer if self.has_tokenizer else None, text)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
