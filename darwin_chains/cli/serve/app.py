"""Darwin behind an OpenAI-compatible HTTP API, so any OpenAI client (or LangChain's ChatOpenAI) gets aligned answers.

    darwin-chains serve --policy embedded --port 8000

`POST /v1/chat/completions` runs one search per request and answers with the best response. Search parameters
come per request: the OpenAI fields `max_tokens`, `temperature`, `top_p`, `seed` and `stop`, and any `SearchConfig`
field in an extra `darwin` object (`{"darwin": {"mutants": 3, "replacement_period": 16}}`); neutral values of the
fields a search cannot honour (`presence_penalty: 0`, `logprobs: false`, ...) are accepted. Everything is checked,
types and the operator's caps (`limits.py`) included, before a search starts: a bad parameter is a 400 that says
which; who may call at all is `guard.py`'s business. No seed means a fresh one, returned in `darwin.seed`. The reply's `usage` counts every token the whole search spent, and its `darwin` field holds the
reward and a compact trace. `stream: true` is answered as server-sent events as the answer settles
(`streaming.py`): Darwin cannot commit to a prefix before its last cycle, so only text no later step can change
is sent, with keep-alive comments meanwhile. The models load as the server starts (`readiness.py`).

Searches run as tasks on the event loop (`Search.arun`), each with its own state, side by side: a local policy
decodes the beams of all of them as rows of one batch. `admission.py` bounds how many run and wait, and cancels a
search whose client has gone. `/health` and `/metrics` (`metrics.py`) never wait behind searches. Signals shut the
server down gracefully (`lifecycle.py`).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ...config import SearchConfig, knobs, resolve
from ...errors import (BudgetError, ConfigError, DarwinError, InputError, MutationError, PolicyError, RewardError,
                       UngroundedError, require)
from ...prompt import Prompt
from ...search import Search
from ...trace import SearchResult
from .access import AccessLog
from .guard import Guard, check_key, is_loopback, redact, secrets_of
from .limits import Limits
from . import streaming
from .admission import MAX_CONCURRENT, Admission, Cancelled, Disconnected, Refused
from .metrics import Metrics
from .readiness import Readiness

#: OpenAI request fields that are mapped onto the search (every knob, by name or alias, goes in `darwin`).
MAPPED = {"max_tokens": "max_new_tokens", "max_completion_tokens": "max_new_tokens", "temperature": "temperature",
          "top_p": "top_p", "seed": "seed", "stop": "stop"}
#: OpenAI request fields accepted and ignored: they do not change what a search does.
IGNORED = {"model", "stream", "stream_options", "user", "n", "metadata", "store", "parallel_tool_calls",
           "service_tier"}
#: OpenAI request fields that common clients send with a neutral value: accepted with one of these, else a 400.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0,), "frequency_penalty": (0,), "logprobs": (False,), "top_logprobs": (0,),
    "logit_bias": ({},), "modalities": (["text"],),
    "tool_choice": ("none", "auto"), "tools": ([],), "functions": ([],), "function_call": ("none", "auto"),
}
_KNOB = {k.name: k for k in knobs()}
log = logging.getLogger(__name__)


def create_app(search: Search, *, model: str | None = None, max_concurrent: int = MAX_CONCURRENT, max_queue: int = 16,
               limits: Limits | None = None, api_key: str | None = None, host: str = "127.0.0.1",
               preload: bool = True) -> Any:
    """A FastAPI app serving `search` (its config holds the defaults each request may change).

    `limits` caps what one request may ask for (`limits.py`); `api_key`, when set, is required as a bearer
    token, and `host` is where the server listens (loopback: only loopback Host headers are answered; `guard.py`).

    `max_concurrent` searches run at once and `max_queue` more wait; the next gets a 429 (`admission.py`).
    With `preload`, the components load as the server starts (`readiness.py`).
    """
    fastapi = require("fastapi", extra="serve")
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = fastapi.FastAPI(title="darwin-chains", description="Darwin decode-time alignment, OpenAI-compatible",
                          lifespan=_lifespan(max_concurrent), docs_url=None, redoc_url=None, openapi_url=None)
    model_id = model or f"darwin:{getattr(search.policy, 'name', 'policy')}"
    limits = app.state.limits = limits or Limits()
    admission = app.state.admission = Admission(max_concurrent, max_queue, limits.max_held_tokens)
    metrics = app.state.metrics = Metrics(admission)
    limits.check(search.config)  # the operator's own defaults must fit the caps
    check_key(api_key)
    secrets = [api_key, *secrets_of(search.policy, search.reward, search.mutator)]
    readiness = app.state.readiness = Readiness(search, preload, secrets)
    app.add_middleware(Guard, api_key=api_key, loopback=is_loopback(host), max_body_bytes=limits.max_body_bytes,
                       body_timeout=limits.max_body_seconds)
    app.add_middleware(AccessLog, secrets=secrets)

    def crashed(request, exc: Exception) -> Any:
        metrics.errors.labels("500").inc()
        return _error(500, "internal error; the server log has the details", "server_error")

    def refused(request, exc: StarletteHTTPException) -> Any:  # 404, 405: OpenAI's format too, 405 with its Allow
        if exc.status_code >= 500:
            metrics.errors.labels(str(exc.status_code)).inc()
        response = _error(exc.status_code, f"{exc.detail}: {request.method} {ascii(request.url.path)[1:-1][:100]}")
        response.headers.update(exc.headers or {})
        return response

    app.add_exception_handler(Exception, crashed)
    app.add_exception_handler(StarletteHTTPException, refused)

    @app.get("/health")
    async def health() -> Any:
        # never waits behind searches: they await their model work, which runs off the event loop
        status = "shutting_down" if admission.closed else readiness.status
        body = {"status": status, "running": admission.running, "queued": admission.queued}
        if readiness.error:
            body["error"] = readiness.error
        return JSONResponse(body, status_code=200 if status == "ok" else 503)

    @app.get("/ready")
    async def ready() -> Any:
        problems = (["the server is shutting down"] if admission.closed else []) + await readiness.problems()
        return JSONResponse({"status": "unavailable" if problems else "ready", "problems": problems},
                            status_code=503 if problems else 200)

    @app.get("/metrics")
    async def prometheus() -> Any:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models() -> dict:
        entry = {"id": model_id, "object": "model", "created": 0, "owned_by": "darwin-chains"}
        return {"object": "list", "data": [entry | {"darwin": {"limits": limits.to_dict()}}]}

    @app.get("/v1/darwin/limits")
    async def limits_view() -> dict:
        return {"object": "darwin.limits", "limits": limits.describe()}

    def failed(exc: BaseException) -> tuple[int, str, str]:
        """The status, message and error type a failed request is answered with, counted in the metrics."""
        if isinstance(exc, (ConfigError, InputError)):
            return 400, str(exc), "invalid_request_error"
        if isinstance(exc, Refused):
            return exc.status, str(exc), "rate_limit_error" if exc.status == 429 else "server_error"
        if isinstance(exc, Disconnected):  # nobody is listening; the status is for the log and the metrics
            metrics.searches.labels("disconnect").inc()
            return 499, "the client closed the request; its search was cancelled", "invalid_request_error"
        if isinstance(exc, Cancelled):
            metrics.searches.labels("shutdown").inc()
            return 503, "the server shut down before the search finished; retry", "server_error"
        if isinstance(exc, BudgetError):  # the server's own wall ran out first: a timeout, with what to change
            metrics.searches.labels("timeout").inc()
            return 504, f"{exc} (this server caps it at --max-search-seconds {limits.max_search_seconds:g})", \
                "server_error"
        if isinstance(exc, UngroundedError):  # on_ungrounded="raise", and no answer was grounded in the context
            return 422, str(exc), "invalid_request_error"
        if isinstance(exc, (PolicyError, RewardError, MutationError)):  # a component behind the server failed
            metrics.searches.labels("failed").inc()
            return 502, _failure(exc, secrets), "server_error"
        if isinstance(exc, DarwinError):  # the request asked for something this server cannot do (no mutator, ...)
            return 400, str(exc), "invalid_request_error"
        raise exc

    def failed_mid_stream(exc: BaseException) -> tuple[int, str, str]:
        try:
            return failed(exc)
        except BaseException:  # noqa: BLE001 - the stream has begun: an error event, and the details in the log
            log.exception("search failed mid-stream")
            metrics.errors.labels("500").inc()
            return 500, "internal error; the server log has the details", "server_error"

    async def answer(request) -> Any:
        try:
            body, prompt, overrides, stream = await asyncio.to_thread(read_request, await request.body(),
                                                                      search.config, limits)
            if prompt.json_schema is not None and not getattr(search.policy, "supports_json_schema", False):
                raise ConfigError(f"response_format asks for JSON, but this server's policy "
                                  f"({type(search.policy).__name__}) cannot constrain its output; leave it out")
            await readiness.wait()  # a request that came while the models load waits; their time is not its
            prompt_tokens, held = await asyncio.to_thread(footprint, search, prompt, overrides)
            limits.check_size(prompt_tokens, held)
            if stream:
                events = await streaming.respond(
                    admission, search, prompt, overrides, held, is_disconnected=request.is_disconnected,
                    metrics=metrics,
                    model=body.get("model") or model_id, include_usage=_include_usage(body), completion=completion,
                    failure=failed_mid_stream)
                return StreamingResponse(events, media_type="text/event-stream")
            result = await admission.run(lambda: search.arun(prompt, on_event=metrics.event, **overrides),
                                         request.is_disconnected, held)
        except Exception as exc:  # noqa: BLE001 - `failed` re-raises what it does not know, for the 500 handler
            status, message, kind = failed(exc)
            response = _error(status, message, kind)
            if isinstance(exc, Refused):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        metrics.finished(result)
        return JSONResponse(completion(result, body.get("model") or model_id))

    async def chat_completions(request) -> Any:
        started = time.perf_counter()
        response = await answer(request)
        metrics.latency.observe(time.perf_counter() - started)
        if response.status_code >= 400:
            metrics.errors.labels(str(response.status_code)).inc()
        return response

    # Set here, not as a string annotation: FastAPI must see the Request class to inject the request.
    chat_completions.__annotations__ = {"request": fastapi.Request, "return": Any}
    app.post("/v1/chat/completions")(chat_completions)
    return app


def _lifespan(max_concurrent: int) -> Any:
    """Worker threads for every running search, and the models loading as the server starts.

    A search's sync calls (a reward, a mutator, a policy without `aextend`) each take a thread, two at once while its
    seed sample decodes beside the mutator, and asyncio's default pool has only the core count + 4: past that,
    running searches would take turns."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        pool = ThreadPoolExecutor(2 * max_concurrent + 4, thread_name_prefix="darwin-serve")
        asyncio.get_running_loop().set_default_executor(pool)  # shut down with the loop
        loading = asyncio.ensure_future(app.state.readiness.load())
        yield
        loading.cancel()

    return lifespan


def footprint(search: Search, prompt: Prompt, overrides: Mapping[str, Any]) -> tuple[int, int]:
    """The prompt's tokens (the policy's own count where it has one, else about 4 characters a token) and the most
    cached tokens its search will hold: prompt and answer, look-ahead included, for every beam and the seed sample."""
    encode = getattr(search.policy, "encode", None)
    tokens = len(encode(prompt)) if callable(encode) else sum(len(m["content"]) for m in prompt.messages) // 4 + 1
    config = search.config.replace(**overrides)
    rows = config.beams + int(config.evolves and config.seed_sample)
    return tokens, rows * (tokens + config.max_new_tokens + config.look_ahead)


def _include_usage(body: Mapping[str, Any]) -> bool:
    """`stream_options.include_usage`: a last chunk with the usage, as OpenAI sends it (checked in parse_request)."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and options.get("include_usage") is True


def read_request(raw: bytes, config: SearchConfig, limits: Limits | None = None
                 ) -> tuple[Mapping[str, Any], Prompt, dict[str, Any], bool]:
    """The decoded body, then what `parse_request` makes of it; run in a worker thread, so a big body never
    holds up the event loop."""
    body = decode(raw)
    return (body, *parse_request(body, config, limits))


def decode(raw: bytes) -> Any:
    """The JSON body, refusing what JSON text may carry but a search cannot use: NaN, Infinity, lone surrogates."""
    def constant(name: str) -> Any:
        raise ConfigError(f"the request body holds {name}, which is not a JSON number; send a finite number")

    try:
        text = raw.decode("utf-8")
        body = json.loads(text, parse_constant=constant)
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError("the request body is not UTF-8 text; send JSON encoded as UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"the request body is not valid JSON ({str(exc)[:120]})") from None
    where = _surrogate(body)
    if where is not None:
        raise ConfigError(f"{where} holds a lone UTF-16 surrogate (such as \\ud800), which is not text; "
                          "send valid Unicode")
    return body


def parse_request(body: Any, config: SearchConfig, limits: Limits | None = None
                  ) -> tuple[Prompt, dict[str, Any], bool]:
    """The prompt, the search overrides and the stream flag of a chat completions request; ConfigError when bad.

    Every value is checked here, types included, before any search starts; with `limits`, the caps too, and the
    time budget is the operator's, lowered (never raised) by the request's.
    """
    if not isinstance(body, Mapping):
        raise ConfigError("the request body must be a JSON object")
    known = MAPPED.keys() | IGNORED | NEUTRAL.keys() | {"messages", "darwin", "response_format"}
    unknown = sorted(str(k)[:40] for k, v in body.items() if k not in known and v is not None)
    if unknown:
        raise ConfigError(f"unsupported field(s) {', '.join(unknown)}; search parameters go in "
                          f"\"darwin\": {{...}} (any of {', '.join(k.name for k in knobs())})")
    for name, neutral in NEUTRAL.items():
        if body.get(name) is not None and body[name] not in neutral:
            raise ConfigError(f"unsupported field(s) {name}={json.dumps(body[name])[:60]}: a search cannot honour "
                              f"it; leave it out or send {' or '.join(json.dumps(v) for v in neutral)}")
    if body.get("n") not in (None, 1) or isinstance(body.get("n"), bool):
        raise ConfigError(f"n must be 1 (a search returns its one best answer), got {body['n']!r:.40}")
    for name, kind, what in (("stream", bool, "true or false"), ("model", str, "a text")):
        if body.get(name) is not None and not isinstance(body[name], kind):
            raise ConfigError(f"{name} must be {what}, got {json.dumps(body[name])[:40]}")
    stream_options(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConfigError("messages must be a non-empty list of {role, content} objects")
    prompt = Prompt.of([_message(m, i) for i, m in enumerate(messages)]).constrained(
        response_schema(body.get("response_format")))
    darwin = {} if body.get("darwin") is None else body["darwin"]
    if not isinstance(darwin, Mapping):
        raise ConfigError("darwin must be an object of search parameters, e.g. {\"mutants\": 3}")
    given: dict[str, tuple[str, Any]] = {}
    for key, value in body.items():
        if key in MAPPED and value is not None:
            name, value = MAPPED[key], _KNOB[MAPPED[key]].check(value, key)
            if name in given and given[name][1] != value:  # max_tokens and max_completion_tokens
                raise ConfigError(f"{given[name][0]}={given[name][1]} and {key}={value} disagree; give one of them "
                                  "(max_completion_tokens is OpenAI's newer name for max_tokens)")
            given[name] = (key, value)
    for name, (key, value) in zip(resolve(darwin), darwin.items()):  # aliases to names; unknown names refused
        if name in given:
            raise ConfigError(f"{name} is given twice (as {given[name][0]} and darwin.{key}); give it once")
        given[name] = (f"darwin.{key}", value)
    overrides = {name: _KNOB[name].check(value, key) for name, (key, value) in given.items()}
    if limits is not None:
        asked = overrides.pop("time_budget", None)  # null keeps the operator's budget
        overrides["time_budget"] = limits.time_budget(config, asked)
    try:
        checked = config.replace(**dict(overrides))  # validate now: a bad value is the client's error
    except TypeError as exc:
        raise ConfigError(f"invalid search parameter: {exc}") from exc
    if limits is not None:
        limits.check(checked)
    return prompt, overrides, bool(body.get("stream"))


def stream_options(body: Mapping[str, Any]) -> dict[str, Any]:
    """The request's `stream_options`, checked (ConfigError if bad), with `include_usage` always a bool."""
    options = body.get("stream_options")
    if options is None:
        return {"include_usage": False}
    if not isinstance(options, Mapping):
        raise ConfigError("stream_options must be an object such as {\"include_usage\": true}, got "
                          f"{json.dumps(options)[:40]}")
    usage = options.get("include_usage")
    if usage is not None and not isinstance(usage, bool):
        raise ConfigError(f"stream_options.include_usage must be true or false, got {json.dumps(usage)[:40]}")
    return {**options, "include_usage": bool(usage)}


def response_schema(value: Any) -> dict[str, Any] | None:
    """The JSON schema an OpenAI `response_format` asks the answer to follow (None: free text)."""
    if value is None or value == {"type": "text"}:
        return None
    if value == {"type": "json_object"}:
        return {"type": "object"}
    if isinstance(value, Mapping) and value.get("type") == "json_schema":
        spec = value.get("json_schema")
        if isinstance(spec, Mapping) and isinstance(spec.get("schema"), Mapping):
            return dict(spec["schema"])
    raise ConfigError(f"response_format must be {{\"type\": \"text\"}}, {{\"type\": \"json_object\"}} or "
                      f"{{\"type\": \"json_schema\", \"json_schema\": {{\"name\": ..., \"schema\": {{...}}}}}}, "
                      f"got {json.dumps(value)[:80]}")


def _surrogate(value: Any) -> str | None:
    """Where in the body a string holds a lone surrogate, if anywhere (walked without recursion)."""
    todo = [("the request body", value)]
    while todo:
        where, v = todo.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(v, Mapping):
            for k, item in v.items():
                if _surrogate(k) is not None:
                    return f"a field name in {where}"
                todo.append((f"{k}" if where == "the request body" else f"{where}.{k}", item))
        elif isinstance(v, list):
            todo += [(f"{where}[{i}]", item) for i, item in enumerate(v)]
    return None


def completion(result: SearchResult, model: str) -> dict[str, Any]:
    """An OpenAI chat.completion object for a search result, with the reward and trace summary under `darwin`."""
    darwin = result.metadata()
    usage = darwin.pop("usage")
    darwin.setdefault("seed", result.trace.seed)  # an unseeded request can be replayed with this seed
    return {
        "id": f"chatcmpl-darwin-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.answer},
                     "finish_reason": result.finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"],
                  "total_tokens": usage["total_tokens"]},
        "darwin": darwin,
    }


def _message(m: Any, index: int = 0) -> dict[str, Any]:
    """OpenAI messages may carry content as a list of parts; only text parts can be searched."""
    if not isinstance(m, Mapping):
        raise ConfigError(f"messages[{index}] must be a {{role, content}} object")
    content = m.get("content")
    if isinstance(content, list):
        for i, p in enumerate(content):
            if not isinstance(p, Mapping) or p.get("type") != "text":
                raise ConfigError(f"messages[{index}].content[{i}] is not a text part; only "
                                  "{\"type\": \"text\", \"text\": ...} parts are supported")
            if not isinstance(p.get("text"), str):
                raise ConfigError(f"messages[{index}].content[{i}].text must be a text, "
                                  f"got {json.dumps(p.get('text'))[:40]}")
        content = "".join(p["text"] for p in content)
    role = "system" if m.get("role") == "developer" else m.get("role")
    if not isinstance(role, str):
        raise ConfigError(f"messages[{index}].role must be system, user or assistant, got {json.dumps(role)[:40]}")
    if not isinstance(content, str):
        raise ConfigError(f"messages[{index}].content must be a text or a list of text parts, "
                          f"got {json.dumps(content)[:40]}")
    return {"role": role, "content": content}


def _failure(exc: DarwinError, secrets: list[str | None]) -> str:
    """What a client learns of a component's failure: never an upstream's body, never a key (both go to the log)."""
    log.warning("search failed: %s", redact(f"{type(exc).__name__}: {exc}", secrets))
    status = getattr(exc, "status", None)
    if status is not None:
        return f"{type(exc).__name__}: the model server behind this one answered {status}; the operator's log " \
               "has the details"
    return redact(f"{type(exc).__name__}: {str(exc)[:300]}", secrets)


def _error(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> Any:
    """OpenAI's error format, so clients show the message (and do not retry a 4xx)."""
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "code": code or str(status)}},
                        status_code=status)


def run(search: Search, *, host: str = "127.0.0.1", port: int = 8000, model: str | None = None,
        max_concurrent: int = MAX_CONCURRENT, max_queue: int = 16, shutdown_timeout: float = 30.0,
        limits: Limits | None = None, api_key: str | None = None, timeout_keep_alive: float = 5.0,
        timeout_headers: float = 10.0, max_connections: int | None = 256, access_log: bool = True,
        preload: bool = True) -> None:
    """Serve until a signal: the first lets running searches finish within `shutdown_timeout` s, a second exits now.

    Binds to loopback unless told otherwise. A connection idle for `timeout_keep_alive` s, or slower than
    `timeout_headers` s to send a request's headers, is closed; past `max_connections` a request gets 503
    (`lifecycle.py`). `access_log`: one line per request on stderr (`access.py`). `preload`: the models load
    as the server starts, and /health says "loading" until they have (`readiness.py`).
    """
    require("uvicorn", extra="serve")
    from .lifecycle import serve

    app = create_app(search, model=model, max_concurrent=max_concurrent, max_queue=max_queue, limits=limits,
                     api_key=api_key, host=host, preload=preload)
    serve(app, app.state.admission, host=host, port=port, shutdown_timeout=shutdown_timeout,
          timeout_keep_alive=timeout_keep_alive, timeout_headers=timeout_headers, max_connections=max_connections,
          access_log=access_log)
