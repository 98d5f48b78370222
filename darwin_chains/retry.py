"""Retries, backoff and timeouts for remote calls, as one declarative object shared by the remote policy and judge.

Transient failures are retried: 429 (rate limited), any 5xx, a request that timed out and a dropped connection.
A `Retry-After` header is honoured (capped). Every other 4xx (a bad key, a bad request, an unknown model) will not
get better by asking again, so it fails at once with a message that names the status, the server and the fix.
The `openai` client's own retries must be off (`max_retries=0`) so that this is the only retry layer and every
retry is counted.
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import ConfigError, DarwinError, PolicyError

T = TypeVar("T")

_HINTS = {
    401: "check OPENAI_API_KEY (or the api_key given)",
    403: "the key may not use this model",
    404: "check the base URL (it usually ends in /v1) and the model name",
    400: "the server refused the request's fields",
    422: "the server refused the request's fields",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a remote request.

    Example:
        >>> retry = RetryPolicy(attempts=3, timeout=30)     # 3 tries in all, 30 s each
        >>> policy = OpenAIPolicy.from_url("my-model", "http://127.0.0.1:8000/v1", retry=retry)

    Args:
        attempts: tries in all, the first included (1 disables retrying).
        initial_backoff: seconds before the first retry; doubled on each later one.
        max_backoff: the cap on one wait, `Retry-After` included.
        jitter: up to this many random seconds added to each wait, so clients do not retry in step.
        timeout: seconds one request may take before it counts as failed (and is retried).
    """

    attempts: int = 4
    initial_backoff: float = 0.5
    max_backoff: float = 20.0
    jitter: float = 0.25
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigError(f"attempts must be >= 1, got {self.attempts}")
        if not (self.timeout > 0 and self.initial_backoff >= 0 and self.max_backoff >= 0 and self.jitter >= 0):
            raise ConfigError("timeout must be > 0 and backoffs and jitter >= 0")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based), without `Retry-After`."""
        base = min(self.initial_backoff * 2 ** (retry - 1), self.max_backoff)
        return min(base + random.uniform(0, self.jitter), self.max_backoff)

    def call(self, fn: Callable[[], T], server: str, error: type[DarwinError] = PolicyError,
             deadline: float | None = None) -> tuple[T, int]:
        """`fn()` with retries, none past `deadline` (a `time.monotonic()`); returns its result and the number of
        retries it took."""
        from tenacity import Retrying

        attempts, answered = 0, []
        try:
            for attempt in Retrying(**self._tenacity(deadline)):
                with attempt, _noted(answered):
                    attempts += 1
                    result = fn()
        except Exception as exc:
            raise self.failure(exc, server, attempts, error, answered) from exc
        return result, attempts - 1

    async def acall(self, fn: Callable[[], Awaitable[T]], server: str, error: type[DarwinError] = PolicyError,
                    deadline: float | None = None) -> tuple[T, int]:
        """`await fn()` with retries, none past `deadline`; returns its result and the number of retries it took."""
        from tenacity import AsyncRetrying

        attempts, answered = 0, []
        try:
            async for attempt in AsyncRetrying(**self._tenacity(deadline)):
                with attempt, _noted(answered):
                    attempts += 1
                    result = await fn()
        except Exception as exc:
            raise self.failure(exc, server, attempts, error, answered) from exc
        return result, attempts - 1

    def _tenacity(self, deadline: float | None = None) -> dict[str, Any]:
        from tenacity import retry_if_exception, stop_after_attempt

        stop = stop_after_attempt(self.attempts)
        if deadline is not None:
            stop = stop | (lambda state: time.monotonic() >= deadline)
        return dict(stop=stop, retry=retry_if_exception(retryable), wait=self._wait, reraise=True)

    def timeout_until(self, deadline: float | None) -> float:
        """A request's timeout: `timeout`, or less when `deadline` comes first (never under 10 ms)."""
        return self.timeout if deadline is None else max(0.01, min(self.timeout, deadline - time.monotonic()))

    def _wait(self, state: Any) -> float:
        """The backoff, or the server's `Retry-After` when that is longer; never more than `max_backoff`."""
        wait = self.backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome is not None else None
        after = retry_after(exc)
        return min(max(wait, after), self.max_backoff) if after is not None else wait

    def failure(self, exc: Exception, server: str, attempts: int, error: type[DarwinError],
                answered: list[Exception] | None = None) -> DarwinError:
        """The error to raise for `exc`, naming the server, the status and what to do. `answered` holds what the
        earlier attempts got back: a server that answered 500 and then stopped answering has likely crashed, and
        its own status and message say why."""
        if isinstance(exc, DarwinError):
            return exc
        status = status_of(exc)
        upstream = [e for e in (answered or []) if status_of(e) is not None and e is not exc]
        if status is None and upstream:
            first = upstream[0]
            message = (f"OpenAI-compatible server at {server} answered {status_of(first)} {_reason(first)}"
                       f"{_detail(first)}, then could not be reached ({type(exc).__name__}: {exc}) on the "
                       f"remaining {attempts - len(upstream)} of {attempts} attempts: it has likely crashed or is "
                       "restarting; check its log and restart it. (A vLLM CPU server started with chunked prefill, its "
                       "default, crashes on seeded requests: start it with --no-enable-chunked-prefill, or send no "
                       "seed: send_seed=false)")
            err = error(message)
            err.status = status_of(first)  # type: ignore[attr-defined]
            return err
        if status is not None:
            what = f"answered {status} {_reason(exc)}"
        elif _is_timeout(exc):
            what = f"did not answer within {self.timeout:g} s"
        else:
            what = f"could not be reached ({type(exc).__name__}: {exc})"
        detail = _detail(exc)
        if retryable(exc):
            message = f"OpenAI-compatible server at {server} {what} on all {attempts} attempts{detail}; " \
                      "try again later, or raise RetryPolicy(attempts=..., timeout=...)"
        else:
            message = f"OpenAI-compatible server at {server} {what}{detail}: {_HINTS.get(status, 'not retried')}"
        err = error(message)
        err.status = status  # type: ignore[attr-defined]
        return err


@contextlib.contextmanager
def _noted(answered: list[Exception]):
    """Keep what one attempt raised (its status and message) for the error that ends the retries."""
    try:
        yield
    except Exception as exc:
        answered.append(exc)
        raise


def retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and dropped connections may pass; other errors will not."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError)  # timeouts are a kind of connection error


def status_of(exc: BaseException | None) -> int | None:
    return getattr(exc, "status_code", None)


def retry_after(exc: BaseException | None) -> float | None:
    """The server's `Retry-After` in seconds (the HTTP-date form is rare from model servers and is ignored)."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _is_timeout(exc: BaseException) -> bool:
    import openai

    return isinstance(exc, openai.APITimeoutError)


def _reason(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return getattr(response, "reason_phrase", "") or ""


def _detail(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        body = body.get("detail") or body.get("message") or body.get("error") or body
    return f" ({str(body)[:200]})" if body else ""
