"""What a hostile probe found, each now a clear 4xx or a bounded connection: numbers past float range, tiny
temperatures, conflicting fields, the routes FastAPI adds, slow and idle sockets, and the access log."""
from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve.app import stream_options
from darwin_chains.cli.serve.limits import Limits
from darwin_chains.errors import ConfigError
from darwin_chains.testing import FakePolicy, KeywordReward

from tests.support.searches import fake_search

from .conftest import Server, chat, wait_until
from .slow_server import slow_search


@pytest.fixture(scope="module")
def server():
    s = Server(fake_search(), limits=Limits(max_search_seconds=5))
    yield s
    s.stop()


def post(server, body) -> httpx.Response:
    data = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(f"{server.url}/chat/completions", content=data, timeout=30,
                      headers={"Content-Type": "application/json"})


HUGE = [10 ** 400, -(10 ** 400), 2 ** 1024, -(2 ** 1024), 2 ** 1024 - 2 ** 969]  # all past float range
LIMITS = [1e308, -1e308, 1.7976931348623157e308, 1e-300, -1e-300, 5e-324, -0.0, 0.0, 2 ** 63, -(2 ** 63), 2 ** 64]
NUMBER_FIELDS = [("temperature", None), ("top_p", None), ("max_tokens", None), ("max_completion_tokens", None),
                 ("seed", None), *[(name, "darwin") for name in (
                     "time_budget", "timeout", "reward_threshold", "top_k", "mutants", "beams_per_mutant",
                     "replacement_period", "keep_top", "mutation_cycles", "archive_size", "look_ahead")]]


def field(name: str, where: str | None, value) -> str:
    """A body holding `value` as JSON writes it (Python's json would write an int past float range too)."""
    inner = f'"{name}": {json.dumps(value)}'
    return '{"messages": [{"role": "user", "content": "say cat"}], ' + (
        f'"darwin": {{{inner}}}}}' if where else f"{inner}}}")


@pytest.mark.parametrize("name, where", NUMBER_FIELDS)
def test_a_number_past_float_range_is_a_400_naming_the_field_and_its_range(server, name, where):
    for value in HUGE:
        reply = post(server, field(name, where, value))
        assert reply.status_code == 400, (value, reply.text)
        message = reply.json()["error"]["message"]
        assert (f"darwin.{name}" if where else name) in message and "digits" in message, message
        assert any(limit in message for limit in ("1.8e308", "at most 1", "2**63")), message


@pytest.mark.parametrize("name, where", NUMBER_FIELDS)
def test_every_number_knob_at_the_float_limits_is_answered_or_refused_never_a_5xx(server, name, where):
    for value in LIMITS:
        reply = post(server, field(name, where, value))
        assert reply.status_code in (200, 400), (value, reply.text)
        assert reply.status_code == 200 or reply.json()["error"]["message"]


def test_a_tiny_temperature_or_top_p_is_answered_greedily_by_a_real_sampler(serve, tiny_policy):
    """These once reached the sampler as inf/nan and came back as a 502 upstream failure."""
    search = Search(tiny_policy, KeywordReward(["cat"]), defaults.mutator("template"),
                    SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=6, seed=0))
    s = serve(search)
    answers = set()
    for fields in ({"temperature": 0}, {"temperature": 1e-300}, {"temperature": 5e-324},
                   {"temperature": 1.0, "top_p": 1e-200}, {"temperature": 1.0, "top_p": 5e-324}):
        reply = post(s, chat(seed=3, **fields))
        assert reply.status_code == 200, (fields, reply.text)
        answers.add(reply.json()["choices"][0]["message"]["content"])
    assert len(answers) == 1  # all greedy, so all the same
    assert post(s, chat(seed=3, temperature=1e308)).status_code == 200  # uniform, but still a draw


@pytest.mark.parametrize("fields, status, words", [
    ({"max_tokens": 4, "max_completion_tokens": 5}, 400, ["max_tokens=4", "max_completion_tokens=5"]),
    ({"max_completion_tokens": 5, "max_tokens": 4}, 400, ["max_tokens=4", "max_completion_tokens=5"]),
    ({"max_tokens": 4, "max_completion_tokens": True}, 400, ["max_completion_tokens"]),
    ({"max_tokens": 4, "max_completion_tokens": 4}, 200, []),
    ({"stream_options": [True]}, 400, ["stream_options must be an object"]),
    ({"stream_options": "yes"}, 400, ["stream_options must be an object"]),
    ({"stream_options": {"include_usage": 1}}, 400, ["stream_options.include_usage must be true or false"]),
    ({"stream_options": {"include_usage": "true"}}, 400, ["stream_options.include_usage"]),
    ({"stream_options": {"include_usage": True}}, 200, []),
    ({"stream_options": {}}, 200, []),
    ({"stream_options": None}, 200, []),
])
def test_conflicting_or_malformed_fields_are_a_400_naming_them(server, fields, status, words):
    reply = post(server, chat(**fields))
    assert reply.status_code == status, reply.text
    for word in words:
        assert word in reply.json()["error"]["message"]


def test_stream_options_gives_include_usage_as_a_bool():
    assert stream_options({}) == {"include_usage": False}
    assert stream_options({"stream_options": {"include_usage": True}})["include_usage"] is True
    with pytest.raises(ConfigError, match="include_usage"):
        stream_options({"stream_options": {"include_usage": 0}})


def test_no_docs_redoc_or_openapi_schema_are_served(server):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        reply = httpx.get(f"{server.base}{path}", timeout=5)
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "404"


@pytest.mark.parametrize("method, path, allow", [("GET", "/v1/chat/completions", "POST"),
                                                 ("DELETE", "/v1/models", "GET"), ("POST", "/health", "GET")])
def test_a_405_names_the_allowed_methods(server, method, path, allow):
    reply = httpx.request(method, f"{server.base}{path}", timeout=5, content=b"{}",
                          headers={"Content-Type": "application/json"})
    assert reply.status_code == 405 and reply.headers["allow"] == allow
    assert reply.json()["error"]["type"] == "invalid_request_error"


class Broken(Search):
    """A search with a bug: a component's failure would be a 502; this is a crash, the generic 500."""

    async def arun(self, *args, **kwargs):
        raise RuntimeError("a bug in the server")


def errors(server) -> dict[str, float]:
    text = httpx.get(f"{server.base}/metrics", timeout=5).text
    return {s.labels["status"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "darwin_errors_total"}


def test_every_5xx_is_counted_in_the_metrics_the_generic_500_too(serve):
    s = serve(Broken(FakePolicy(), KeywordReward(["cat"]), defaults.mutator("template"),
                     SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=8)), preload=False)
    reply = post(s, chat())
    assert reply.status_code == 500 and "server log" in reply.json()["error"]["message"]
    assert "RuntimeError" not in reply.text
    assert errors(s).get("500") == 1


ACCESS = "darwin_chains.cli.serve.access"
KEY = "access-log-key-0123456789"


def test_the_access_log_has_one_line_per_request_refusals_included_and_never_the_key(serve, caplog):
    s = serve(fake_search(), api_key=KEY)
    with caplog.at_level(logging.INFO, logger=ACCESS):
        assert httpx.get(f"{s.url}/models", headers={"Authorization": "Bearer wrong-key-0123"}).status_code == 401
        reply = httpx.post(f"{s.url}/chat/completions?key={KEY}", json=chat(darwin={"mutants": 0}),
                           headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert reply.status_code == 400
        assert httpx.get(f"{s.base}/health").status_code == 200
        deadline = time.monotonic() + 10  # a line is written once its response is sent, in the server's thread
        while len(lines := [r.getMessage() for r in caplog.records if r.name == ACCESS]) < 3:
            assert time.monotonic() < deadline, lines
            time.sleep(0.01)
    assert len(lines) == 3, lines
    assert '"GET /v1/models HTTP/1.1" 401 ' in lines[0] and lines[0].startswith("127.0.0.1:")
    assert '"POST /v1/chat/completions HTTP/1.1" 400 ' in lines[1] and lines[1].endswith(" ms")
    assert KEY not in caplog.text and "wrong-key" not in caplog.text and "Bearer" not in caplog.text


def test_the_access_log_can_be_turned_off(serve, caplog):
    from darwin_chains.cli.serve import access

    s = serve(fake_search())
    try:
        access.enable(False)
        with caplog.at_level(logging.INFO):
            assert httpx.get(f"{s.url}/models", timeout=5).status_code == 200
        assert not [r for r in caplog.records if r.name == ACCESS]
    finally:
        logging.getLogger(ACCESS).setLevel(logging.NOTSET)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it sent before."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
        return True, data
    except TimeoutError:
        return False, data
    except ConnectionResetError:
        return True, data


def test_idle_and_slow_header_connections_are_closed(serve):
    s = serve(fake_search(), timeout_headers=0.5)
    idle, slow = s.connect(), s.connect()
    slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    started = time.monotonic()
    for _ in range(3):  # a byte now and then: each resets uvicorn's keep-alive timer, not this one
        time.sleep(0.2)
        slow.sendall(b"X")
    assert closed_within(idle, 5) == (True, b"")
    assert closed_within(slow, 5)[0] and time.monotonic() - started < 5
    assert s.up()


def test_a_request_slower_than_the_header_timeout_is_answered_and_the_connection_kept(serve):
    s = serve(slow_search(0.3), timeout_headers=0.3)  # the search takes over a second
    with httpx.Client(base_url=s.base, timeout=30) as client:
        assert client.post("/v1/chat/completions", json=chat()).status_code == 200
        assert client.get("/health").status_code == 200  # the same connection, kept alive


def test_a_slow_body_is_a_408_and_closes_the_connection(serve):
    s = serve(fake_search(), limits=Limits(max_body_seconds=0.5), timeout_headers=5)
    body = json.dumps(chat()).encode()
    sock = s.connect()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    closed, data = closed_within(sock, 5)
    assert closed and data.startswith(b"HTTP/1.1 408 "), data
    assert b"--max-body-seconds" in data and b"connection: close" in data.lower()


def test_past_max_connections_a_request_gets_503_until_the_idle_ones_close(serve):
    s = serve(fake_search(), timeout_headers=1.0, max_connections=4)
    idle = [s.connect() for _ in range(4)]
    time.sleep(0.2)
    assert httpx.get(f"{s.base}/health", timeout=5).status_code == 503
    assert wait_until(lambda: s.up(), 10)  # the idle ones time out, and the server answers again
    for sock in idle:
        sock.close()
