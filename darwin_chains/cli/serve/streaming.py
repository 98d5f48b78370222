"""`stream: true`: settled text goes out as it settles, in OpenAI's chunk format, with keep-alives between.

A search can change its answer until it decides, so only text that no later step can change is sent
(`Search.astream`'s deltas); the rest comes with the finish reason. While nothing settles, an SSE comment goes out
every `KEEP_ALIVE` seconds, so a proxy with a short read timeout keeps the connection. A request is admitted
(`admission.py`) before its stream starts, so a full queue is still a plain 429; a failure after that is an
`error` event, as OpenAI's streams send one.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ...prompt import Prompt
from ...search import Search
from ...search.stream import Delta, Final, Progress
from ...trace import SearchResult
from .admission import Admission
from .metrics import Metrics

#: Seconds between keep-alive comments while no text has settled.
KEEP_ALIVE = 5.0


async def respond(admission: Admission, search: Search, prompt: Prompt, overrides: dict[str, Any], tokens: int,
                  *, is_disconnected: Callable[[], Awaitable[bool]], metrics: Metrics, model: str,
                  include_usage: bool, completion: Callable[[SearchResult, str], dict],
                  failure: Callable[[BaseException], tuple[int, str, str]]) -> AsyncIterator[str]:
    """Admit the search (holding `tokens` cached tokens), then return its events as SSE lines. Raises what admission
    raises (Refused, Disconnected, ...) before anything is sent, so the caller answers those with their own status."""
    events: asyncio.Queue = asyncio.Queue()
    admitted = asyncio.Event()

    async def work() -> SearchResult:
        admitted.set()
        async for event in search.astream(prompt, **overrides):
            if isinstance(event, Progress):
                metrics.event(event.kind, event.data)
            else:
                events.put_nowait(event)
            if isinstance(event, Final):
                return event.result
        raise RuntimeError("the search ended without a result")  # astream always ends with Final

    job = asyncio.ensure_future(admission.run(work, is_disconnected, tokens))
    entered = asyncio.ensure_future(admitted.wait())
    await asyncio.wait({job, entered}, return_when=asyncio.FIRST_COMPLETED)
    entered.cancel()
    if job.done() and not admitted.is_set():
        job.result()  # raises why it was not admitted
    return _sse(job, events, metrics, model, include_usage, completion, failure)


async def _sse(job: asyncio.Future, events: asyncio.Queue, metrics: Metrics, model: str, include_usage: bool,
               completion: Callable[[SearchResult, str], dict],
               failure: Callable[[BaseException], tuple[int, str, str]]) -> AsyncIterator[str]:
    base = {"id": f"chatcmpl-darwin-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model}

    def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
        body = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}
        return f"data: {json.dumps(body)}\n\n"

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""}, **({"usage": None} if include_usage else {}))
        while True:
            get = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait({get, job}, timeout=KEEP_ALIVE, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                if job in done and events.empty():  # failed before its Final
                    status, message, kind = failure(job.exception() or RuntimeError("the search was cancelled"))
                    finished = True
                    yield f"data: {json.dumps({'error': {'message': message, 'type': kind, 'code': str(status)}})}\n\n"
                    break
                if not done:
                    yield ": keep-alive\n\n"
                continue
            event = get.result()
            if isinstance(event, Delta):
                yield chunk({"content": event.text}, **({"usage": None} if include_usage else {}))
                continue
            result: SearchResult = event.result
            finished = True
            metrics.finished(result)
            reply = completion(result, model)
            if event.delta:
                yield chunk({"content": event.delta}, **({"usage": None} if include_usage else {}))
            yield chunk({}, reply["choices"][0]["finish_reason"], darwin=reply["darwin"],
                        **({"usage": None} if include_usage else {}))
            if include_usage:
                yield f"data: {json.dumps(base | {'choices': [], 'usage': reply['usage']})}\n\n"
            break
        yield "data: [DONE]\n\n"
    finally:
        if not finished:  # the client left mid-stream: the search stops at its next step
            job.cancel()
            metrics.searches.labels("disconnect").inc()
