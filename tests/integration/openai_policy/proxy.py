"""A fault-injecting HTTP reverse proxy on loopback: a real HTTP hop in front of a real server.

It answers scripted faults (429 with Retry-After, 500, 401, a stall past the client's timeout, a dropped
connection), each once per entry in `faults`, then forwards requests to the upstream server unchanged. It records
every request it forwarded and that the upstream answered with 2xx, so tests can count them, and how many POSTs
were in flight over time, so tests can see whether a client keeps the server busy.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx

REASONS = {200: "OK", 401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error"}


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/").removesuffix("/v1")  # the server's root; paths keep their /v1
        self.faults: list[str] = []  # consumed in order, one per POST: "429", "500", "401", "stall", "drop"
        self.always: str | None = None  # a fault for every POST (e.g. "401")
        self.delay = 0.0  # seconds before forwarding each POST (a slow server)
        self.stall = 5.0  # seconds a "stall" holds the connection before dropping it
        self.forwarded: list[dict] = []  # bodies of POSTs the upstream answered with 2xx
        self.headers: list[dict[str, str]] = []  # the headers of every POST, lower-cased, in arrival order
        self.injected: list[str] = []
        self.refused: list[bytes] = []  # bodies of the requests a fault answered
        self.in_flight = 0
        self.changes: list[tuple[float, int]] = []  # (monotonic time, POSTs in flight after the change)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.faults, self.always, self.delay = [], None, 0.0
        self.forwarded.clear()
        self.headers.clear()
        self.injected.clear()
        self.refused.clear()
        self.changes.clear()

    def load(self) -> tuple[int, float]:
        """The most POSTs in flight at once, and the mean number in flight from the first POST to the last one,
        while the client still had requests to send (the tail, when lanes run out of work, is left out)."""
        last = max((k for k, (_, n) in enumerate(self.changes) if k and n > self.changes[k - 1][1]), default=0)
        span = self.changes[: last + 1]
        if len(span) < 2:
            return 0, 0.0
        area = sum(n * (t1 - t0) for (t0, n), (t1, _) in zip(span, span[1:]))
        return max(n for _, n in self.changes), area / (span[-1][0] - span[0][0])

    def _track(self, step: int) -> None:
        self.in_flight += step
        self.changes.append((time.monotonic(), self.in_flight))

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            fault = None
            if method == "POST":
                self._track(+1)
                self.headers.append(headers)
                fault = self.always or (self.faults.pop(0) if self.faults else None)
            if fault:
                self.injected.append(fault)
                self.refused.append(body)
            if fault == "drop":
                writer.transport.abort()
                return
            if fault == "stall":
                await asyncio.sleep(self.stall)
                writer.transport.abort()
                return
            if fault in ("429", "500", "401"):
                extra = "Retry-After: 1\r\n" if fault == "429" else ""
                await self._reply(writer, int(fault), json.dumps({"error": {"message": f"injected {fault}"}}).encode(),
                                  extra)
                return
            if method == "POST" and self.delay:
                await asyncio.sleep(self.delay)
            async with httpx.AsyncClient(timeout=120) as client:
                passed = {k: v for k, v in headers.items() if k in ("content-type", "x-session-id")}
                up = await client.request(method, self.upstream + path, content=body,
                                          headers={"content-type": "application/json", **passed})
            if method == "POST" and up.is_success:
                self.forwarded.append(json.loads(body))
            await self._reply(writer, up.status_code, up.content)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            writer.transport.abort()
        finally:
            if method == "POST":
                self._track(-1)

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, body: bytes, extra: str = "") -> None:
        writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode() + body)
        try:
            await writer.drain()
        finally:
            writer.close()
