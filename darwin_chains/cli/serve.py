"""Darwin behind an OpenAI-compatible HTTP API, so any OpenAI client (or LangChain's ChatOpenAI) gets aligned answers.

    darwin-chains serve --policy embedded --port 8000

`POST /v1/chat/completions` runs one search per request and answers with the best response. Search parameters
come per request: the OpenAI fields `max_tokens`, `temperature`, `top_p` and `seed`, and any `SearchConfig` field
in an extra `darwin` object (`{"darwin": {"mutants": 3, "replacement_period": 16}}`). A bad parameter is a 400 that
says which. The reply's `usage` counts every token the whole search spent, and its `darwin` field holds the
reward and a compact trace. `stream: true` is answered as server-sent events, but only once the search is done:
Darwin cannot commit to a prefix before its last cycle.

Requests run concurrently on the event loop (`Search.arun`); each has its own search state, and a local model's
lock keeps two searches from decoding on it at once.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from ..config import SearchConfig, knobs, resolve
from ..errors import ConfigError, DarwinError, InputError, MutationError, PolicyError, RewardError, require
from ..prompt import Prompt
from ..search import Search
from ..trace import SearchResult

#: OpenAI request fields that are mapped onto the search (every knob, by name or alias, goes in `darwin`).
MAPPED = {"max_tokens": "max_new_tokens", "max_completion_tokens": "max_new_tokens", "temperature": "temperature",
          "top_p": "top_p", "seed": "seed"}
#: OpenAI request fields accepted and ignored: they do not change what a search does.
IGNORED = {"model", "stream", "stream_options", "user", "n", "metadata", "store", "parallel_tool_calls"}


def create_app(search: Search, *, model: str | None = None) -> Any:
    """A FastAPI app serving `search` (its config holds the defaults each request may change)."""
    fastapi = require("fastapi", extra="serve")
    from fastapi.responses import JSONResponse, StreamingResponse

    app = fastapi.FastAPI(title="darwin-chains", description="Darwin decode-time alignment, OpenAI-compatible")
    model_id = model or f"darwin:{getattr(search.policy, 'name', 'policy')}"

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "darwin-chains"}]}

    async def chat_completions(request) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the request body is not JSON")
        try:
            prompt, overrides, stream = parse_request(body, search.config)
            result = await search.arun(prompt, **overrides)
        except (ConfigError, InputError) as exc:
            return _error(400, str(exc))
        except (PolicyError, RewardError, MutationError) as exc:  # a component behind the server failed
            return _error(502, f"{type(exc).__name__}: {exc}", "server_error")
        except DarwinError as exc:  # the request asked for something this server cannot do (no mutator, ...)
            return _error(400, str(exc))
        reply = completion(result, body.get("model") or model_id)
        if stream:
            return StreamingResponse(_events(reply), media_type="text/event-stream")
        return JSONResponse(reply)

    # Set here, not as a string annotation: FastAPI must see the Request class to inject the request.
    chat_completions.__annotations__ = {"request": fastapi.Request, "return": Any}
    app.post("/v1/chat/completions")(chat_completions)
    return app


def parse_request(body: Any, config: SearchConfig) -> tuple[Prompt, dict[str, Any], bool]:
    """The prompt, the search overrides and the stream flag of a chat completions request; ConfigError when bad."""
    if not isinstance(body, Mapping):
        raise ConfigError("the request body must be a JSON object")
    unknown = sorted(k for k, v in body.items() if k not in MAPPED and k not in IGNORED
                     and k not in ("messages", "darwin") and v is not None)
    if unknown:
        raise ConfigError(f"unsupported field(s) {', '.join(unknown)}; search parameters go in "
                          f"\"darwin\": {{...}} (any of {', '.join(k.name for k in knobs())})")
    if body.get("n") not in (None, 1):
        raise ConfigError(f"n must be 1 (a search returns its one best answer), got {body['n']!r}")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ConfigError("messages must be a list of {role, content} objects")
    prompt = Prompt.of([_message(m) for m in messages])
    overrides = {MAPPED[k]: v for k, v in body.items() if k in MAPPED and v is not None}
    darwin = body.get("darwin") or {}
    if not isinstance(darwin, Mapping):
        raise ConfigError("darwin must be an object of search parameters, e.g. {\"mutants\": 3}")
    overrides.update(resolve(darwin))  # aliases to names; an unknown name is refused with the close ones
    try:
        config.replace(**dict(overrides))  # validate now: a bad value is the client's error, reported as such
    except TypeError as exc:
        raise ConfigError(f"invalid search parameter: {exc}") from exc
    return prompt, overrides, bool(body.get("stream"))


def completion(result: SearchResult, model: str) -> dict[str, Any]:
    """An OpenAI chat.completion object for a search result, with the reward and trace summary under `darwin`."""
    darwin = result.metadata()
    usage = darwin.pop("usage")
    return {
        "id": f"chatcmpl-darwin-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer},
                     "finish_reason": "stop" if result.finished else "length", "logprobs": None}],
        "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                  "total_tokens": usage["total_tokens"]},
        "darwin": darwin,
    }


def _events(reply: dict[str, Any]):
    """The whole answer as one chunk, then the finish reason with usage, then [DONE]."""
    base = {k: reply[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = reply["choices"][0]
    first = base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": choice["message"]["content"]},
                                 "finish_reason": None}]}
    last = base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
                   "usage": reply["usage"], "darwin": reply["darwin"]}
    for chunk in (first, last):
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _message(m: Any) -> dict[str, str]:
    """OpenAI messages may carry content as a list of parts; only text parts can be searched."""
    if not isinstance(m, Mapping):
        raise ConfigError("each message must be a {role, content} object")
    content = m.get("content")
    if isinstance(content, list):
        if any(not isinstance(p, Mapping) or p.get("type") != "text" for p in content):
            raise ConfigError("only text content parts are supported")
        content = "".join(p.get("text", "") for p in content)
    role = "system" if m.get("role") == "developer" else m.get("role")
    return {"role": role, "content": content}


def _error(status: int, message: str, kind: str = "invalid_request_error") -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)


def run(search: Search, *, host: str = "127.0.0.1", port: int = 8000, model: str | None = None) -> None:
    """Serve until interrupted. Binds to loopback unless told otherwise."""
    uvicorn = require("uvicorn", extra="serve")
    uvicorn.run(create_app(search, model=model), host=host, port=port, log_level="warning")
