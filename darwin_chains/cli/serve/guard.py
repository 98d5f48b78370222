"""Who may drive the server: the key, the Host and Origin headers, the content type and the body size.

A search is expensive, so this pure-ASGI middleware answers before any route runs, in OpenAI's error format:
- 421 for a Host that is not loopback on a loopback-bound server (DNS rebinding), 403 for a cross-site Origin
  (a web page posting to it);
- 401 without `Authorization: Bearer KEY` when the server has a key (`/health` stays open);
- 415 for a POST that is not `application/json` (which also keeps browsers from sending "simple" requests);
- 413 for a body over `max_body_bytes`, from Content-Length before reading, or counted while reading;
- 408 for a body that takes more than `body_timeout` seconds to arrive (a slow client holds a connection).

The key is compared as bytes: the header's, and the key's UTF-8 (`check_key` refuses a key no header can carry).

Keys never leave the server: `redact` scrubs them from any text relayed to a client or written to a log.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError

KEY_ENV = "DARWIN_CHAINS_API_KEY"
#: Paths any client may read: a load balancer's health probe carries no key.
OPEN_PATHS = frozenset({"/health"})


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and localhost, with or without brackets."""
    if not host:
        return False
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key(api_key: str | None) -> None:
    """Refuse a key that no client could send: HTTP header values hold no control characters, and their ends are
    trimmed. Non-ASCII is fine, sent as UTF-8 bytes (many clients send only ASCII headers, though)."""
    if not api_key:
        return
    if not api_key.strip() or api_key != api_key.strip() or any(ord(c) < 32 or ord(c) == 127 for c in api_key):
        raise ConfigError("the API key is blank, starts or ends with a space, or holds a control character, so no "
                          f"Authorization header can carry it; set --api-key or ${KEY_ENV} to printable text")


def check_bind(host: str, api_key: str | None, insecure_no_auth: bool) -> None:
    """Refuse to listen beyond loopback without a key, or with a key no client can send, before any model loads."""
    check_key(api_key)
    if not is_loopback(host) and not api_key and not insecure_no_auth:
        raise ConfigError(f"refusing to serve on {host} without a key: anyone who can reach it could run searches; "
                          f"set --api-key or ${KEY_ENV}, bind --host 127.0.0.1, or pass --insecure-no-auth")


class Guard:
    """ASGI middleware: `app.add_middleware(Guard, api_key=..., loopback=True, max_body_bytes=..., body_timeout=30)`.
    """

    def __init__(self, app: Any, *, api_key: str | None = None, loopback: bool = True,
                 max_body_bytes: int = 1_000_000, body_timeout: float = 30.0):
        self.app, self.loopback, self.max_body_bytes, self.body_timeout = app, loopback, max_body_bytes, body_timeout
        self.key = api_key.encode("utf-8") if api_key else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        refusal = self._refusal(scope, headers)
        if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body, refusal = await self._read(receive, headers)
            if body is None and refusal is None:
                return  # the client went away while sending: nobody to answer
            if body is not None:
                receive = _replay(body, receive)
        if refusal is not None:
            return await _send(send, *refusal)
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple | None:
        host = headers.get("host")
        if self.loopback and host is not None and not is_loopback(_hostname(host)):
            return 421, f"Host {host[:100]!r} is not a loopback name; this server answers 127.0.0.1, localhost and " \
                        "[::1] only (a page on another site cannot reach it through DNS rebinding)", "misdirected"
        origin = headers.get("origin")
        if origin is not None and _url(origin) is None:
            return 400, f"the Origin header {origin[:100]!r} is neither a URL (scheme://host[:port]) nor null; " \
                        "send a valid Origin, or none", "invalid_origin"
        if origin is not None and not self._same_site(origin, host):
            return 403, f"cross-site requests are refused (Origin {origin[:100]!r}); call this API from a server, " \
                        "not from a web page on another site", "forbidden"
        if self.key is not None and scope.get("path") not in OPEN_PATHS:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            # latin-1 gives back the header's own bytes: a UTF-8 key matches what a client sent as UTF-8
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode("latin-1"), self.key):
                return 401, "missing or wrong API key; send the header Authorization: Bearer KEY with the key " \
                            "the operator set (--api-key or $" + KEY_ENV + ")", "invalid_api_key"
        if scope["method"] in ("POST", "PUT", "PATCH"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return 415, f"the body must be JSON sent as Content-Type: application/json, got " \
                            f"{kind[:80] or 'no Content-Type'!r}", "unsupported_media_type"
        return None

    def _same_site(self, origin: str, host: str | None) -> bool:
        parts = _url(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" and the like: sandboxed frames and files
        return (self.loopback and is_loopback(parts.hostname)) or (host is not None and parts.netloc == host)

    async def _read(self, receive: Any, headers: dict[str, str]) -> tuple[bytes | None, tuple | None]:
        """The whole body, or the refusal once it is known to be too large (before reading, when it says so) or
        too slow."""
        length = headers.get("content-length")
        if length is not None and not length.strip().isdigit():
            return None, (400, "Content-Length is not a number", "invalid_request_error")
        if length is not None and int(length) > self.max_body_bytes:
            return None, self._too_large(int(length))
        try:
            return await asyncio.wait_for(self._chunks(receive), self.body_timeout)
        except asyncio.TimeoutError:
            return None, (408, f"the request body did not arrive within {self.body_timeout:g} s of its headers; send "
                               "it whole (the operator can raise --max-body-seconds)", "request_timeout")

    async def _chunks(self, receive: Any) -> tuple[bytes | None, tuple | None]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, self._too_large(size, more=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None

    def _too_large(self, size: int, more: bool = False) -> tuple:
        return 413, f"the request body has {'more than ' if more else ''}{size:,} bytes; this server takes at most " \
                    f"{self.max_body_bytes:,} (the operator can raise it with --max-body-bytes)", "request_too_large"


def _url(text: str) -> Any:
    """`text` split as a URL, or None where it is not one (`http://[::1` raises in urlsplit)."""
    try:
        return urlsplit(text)
    except ValueError:
        return None


def _hostname(host: str) -> str:
    """`127.0.0.1:8000` -> `127.0.0.1`; `[::1]:8000` -> `::1`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() and ":" not in name else host


def _replay(body: bytes, receive: Any) -> Any:
    """Hand the app the body already read, then the real channel again (so a disconnect still reaches it)."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send(send: Any, status: int, message: str, code: str) -> None:
    payload = json.dumps({"error": {"message": message, "type": "invalid_request_error" if status != 401
                                    else "authentication_error", "code": code}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if status in (408, 413):  # the rest of the body is never read: this connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


_KEYLIKE = re.compile(r"(?i)\b(bearer\s+)\S+|\b(sk|key|api[_-]?key)([-_=:]\s*)[A-Za-z0-9._\-]{6,}")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with the given keys, bearer tokens and key-shaped strings (sk-...) replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub(lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(2)}{m.group(3)}***", text)


def secrets_of(*components: Any) -> list[str]:
    """The API keys a search's components hold (a remote policy's client, a judge's policy), to redact them."""
    found, seen, todo = [], set(), list(components)
    while todo:
        c = todo.pop()
        if c is None or id(c) in seen or len(seen) > 50:
            continue
        seen.add(id(c))
        key = getattr(c, "api_key", None)
        if isinstance(key, str) and key:
            found.append(key)
        todo += [getattr(c, name, None) for name in ("client", "policy", "judge", "reward", "_client")]
    return found
