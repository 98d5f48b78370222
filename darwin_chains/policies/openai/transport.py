"""Transport: the requests themselves. Which endpoint and arguments, sync and async sends with retries, and the
choices of a reply. A beam's `state` is its token ids in tokens mode (`Tokens`), its chat-templated prompt in
completions mode, None otherwise."""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ...config import Sampling
from ...errors import PolicyError, require
from ...protocols import Beam, Reply
from ...retry import RetryPolicy


@dataclass
class Tokens:
    """A beam in tokens mode: its prompt's token ids (the server's chat template) and the ids written so far."""

    prompt: list[int]
    response: list[int] = field(default_factory=list)

    def key(self) -> tuple[int, ...]:
        return (*self.prompt, -1, *self.response)


@dataclass
class Job:
    """Beams served by one request: several only when they share a prompt and have no response yet (`n`)."""

    beams: list[Beam]
    seeds: list[int]  # per beam: the search's seed plus the beam's index; an `n` request sends the first
    replies: list[Reply] = field(default_factory=list)
    usage: Any = None
    retries: int = 0
    alone: bool = False  # it would have shared an `n` request, had the server honoured `n`
    late: bool = False  # its deadline came first: no reply, and its beams stay as they were


def request(client: Any, model: str, mode: str, job: Job, max_tokens: int, sampling: Sampling, *,
            extra_body: dict, send_seed: bool, top_logprobs: int = 0, timeout: float | None = None,
            headers: dict | None = None) -> tuple[Any, dict]:
    """The endpoint of `client` to call for `job`, and its arguments (`timeout`: this request's, when not the
    client's own; `headers`: extra HTTP headers, the search's session key)."""
    beam = job.beams[0]
    # below a tiny temperature the local sampler decodes greedily; so does the server, asked for 0
    kwargs: dict[str, Any] = dict(model=model, max_tokens=max_tokens,
                                  temperature=0.0 if sampling.greedy else sampling.temperature)
    if timeout is not None:
        kwargs["timeout"] = timeout
    if headers:
        kwargs["extra_headers"] = headers
    if not sampling.greedy:
        kwargs["top_p"] = sampling.top_p
    if len(job.beams) > 1:
        kwargs["n"] = len(job.beams)
    if send_seed:
        kwargs["seed"] = job.seeds[0]
    extra = dict(extra_body)
    if sampling.top_k:
        extra["top_k"] = sampling.top_k  # not in OpenAI's schema; vLLM takes it, others may refuse it
    if beam.prompt.json_schema is not None:
        extra["response_format"] = response_format(beam.prompt.json_schema)
    if mode == "tokens":
        kwargs["prompt"] = beam.state.prompt + beam.state.response
        extra["return_token_ids"] = True
        if top_logprobs:
            kwargs["logprobs"] = top_logprobs
        endpoint = client.completions
    elif mode == "completions":
        kwargs["prompt"] = beam.state + beam.response
        if top_logprobs:
            kwargs["logprobs"] = top_logprobs
        endpoint = client.completions
    else:
        messages = [dict(m) for m in beam.prompt.messages]
        if mode == "chat-continue" and beam.response:
            messages.append({"role": "assistant", "content": beam.response})
            extra.update(continue_final_message=True, add_generation_prompt=False)
        kwargs["messages"] = messages
        if top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=top_logprobs)
        endpoint = client.chat.completions
    if extra:
        kwargs["extra_body"] = extra
    return endpoint, kwargs


def response_format(json_schema: str) -> dict[str, Any]:
    """A prompt's JSON schema as OpenAI's `response_format`, which vLLM takes on both endpoints."""
    schema = json.loads(json_schema)
    title = schema.get("title") if isinstance(schema, dict) else None
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(title or "answer"))[:64]  # OpenAI's pattern for the name
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def send(retry: RetryPolicy, server: str, job: Job, endpoint: Any, kwargs: dict, deadline: float | None = None) -> None:
    """The request with retries; one that fails because `deadline` came first leaves the job `late`, not failed."""
    try:
        reply, job.retries = retry.call(lambda: endpoint.create(**kwargs), server, deadline=deadline)
    except PolicyError:
        if deadline is None or time.monotonic() < deadline:
            raise
        job.late = True
        return
    job.replies, job.usage = replies(reply), reply.usage


async def asend(retry: RetryPolicy, server: str, job: Job, endpoint: Any, kwargs: dict,
                deadline: float | None = None) -> None:
    try:
        reply, job.retries = await retry.acall(lambda: endpoint.create(**kwargs), server, deadline=deadline)
    except PolicyError:
        if deadline is None or time.monotonic() < deadline:
            raise
        job.late = True
        return
    job.replies, job.usage = replies(reply), reply.usage


class AsyncClients:
    """An `openai.AsyncOpenAI` with the sync client's settings, per event loop (an async client serves one loop)."""

    def __init__(self, client: Any, given: Any, timeout: float):
        self.client, self.given, self.timeout = client, given, timeout
        self._made: tuple[Any, Any] | None = None  # (event loop, client)

    def get(self) -> Any:
        if self.given is not None:
            return self.given
        loop = asyncio.get_running_loop()
        if self._made is None or self._made[0] is not loop:
            openai = require("openai", package="openai")
            c = self.client
            self._made = (loop, openai.AsyncOpenAI(base_url=c.base_url, api_key=c.api_key, organization=c.organization,
                                                   project=c.project, default_headers=getattr(c, "_custom_headers", None),
                                                   max_retries=0, timeout=self.timeout))
        return self._made[1]


def replies(reply: Any) -> list[Reply]:
    """The choices of a completions or chat reply, in order, with top log-probabilities when the server sent them."""
    out = []
    for choice in sorted(reply.choices or [], key=lambda c: c.index or 0):
        message = getattr(choice, "message", None)
        text = message.content if message is not None else choice.text
        ids = getattr(choice, "token_ids", None)  # vLLM's name; SGLang's is response_token_ids
        ids = ids if ids is not None else getattr(choice, "response_token_ids", None)
        out.append(Reply(text or "", choice.finish_reason, top_logprobs(choice.logprobs),
                         list(ids) if isinstance(ids, list) else None))
    return out


def top_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    if logprobs is None:
        return None
    content = getattr(logprobs, "content", None)
    if content is not None:  # chat: one entry per token, each with its top alternatives
        return [{alt.token: alt.logprob for alt in (t.top_logprobs or [])} for t in content]
    top = getattr(logprobs, "top_logprobs", None)  # completions: a dict per token
    return [dict(t or {}) for t in top] if top is not None else None
