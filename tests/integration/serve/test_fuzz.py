"""Random JSON shapes, unicode, numbers at the float limits and malformed headers thrown at a real server: every
answer is a JSON 4xx in OpenAI's format or a valid completion, never a 5xx, and the server still answers
afterwards."""
from __future__ import annotations

import json
import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve import IGNORED, MAPPED
from darwin_chains.cli.serve.app import NEUTRAL
from darwin_chains.cli.serve.limits import Limits
from darwin_chains.config import knobs
from darwin_chains.testing import FakePolicy, KeywordReward

from .conftest import Server

#: Any code point, lone surrogates included: JSON's \ud800 escapes carry them.
TEXT = st.text(st.characters(codec=None, categories=None), max_size=12) | st.sampled_from(
    ["", " ", "say cat", "\ud800", "\udfff x", "\x00", "\u202e", "😺" * 3, "cat " * 50])
#: At and past the float limits: JSON's integers are unbounded (one past 1.8e308 once overflowed into a 500), and a
#: temperature of 1e-300 once reached the sampler as inf.
EXTREME = st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 1024, 2 ** 1024 - 2 ** 969, 2 ** 63, -(2 ** 63), 2 ** 64,
                           1e308, -1e308, 1.7976931348623157e308, 1e-300, -1e-300, 1e-200, 5e-324, -5e-324,
                           2.2250738585072014e-308, -0.0]) | st.integers(-(2 ** 1100), 2 ** 1100) | st.floats(
    min_value=1e290, allow_infinity=False) | st.floats(max_value=-1e290, allow_infinity=False) | st.floats(
    -1e-290, 1e-290, allow_subnormal=True)
NUMBER = st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0, 1, 2, 3, -1, 0.5, 1e308, 2 ** 63]) | EXTREME
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)

ROLE = st.sampled_from(["user", "system", "assistant", "developer", "tool", "function", ""]) | JSON
PART = st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url", ""]) | JSON, "text": TEXT | JSON})
CONTENT = TEXT | st.lists(PART, max_size=3) | JSON
MESSAGE = st.fixed_dictionaries({"role": ROLE, "content": CONTENT}) | JSON
USER_LAST = st.tuples(st.lists(MESSAGE, max_size=2), TEXT).map(lambda t: [*t[0], {"role": "user", "content": t[1]}])
MESSAGES = USER_LAST | st.lists(MESSAGE, max_size=3) | JSON

KNOB_NAMES = sorted({n for k in knobs() for n in k.names} | {"sampling", "mutantz", ""})
DARWIN = st.dictionaries(st.sampled_from(KNOB_NAMES) | TEXT, st.integers(-2, 4) | JSON, max_size=4) | JSON
FIELD_NAMES = sorted(MAPPED.keys() | IGNORED | NEUTRAL.keys() | {"tools", "functions", "unknown_field"})
FIELDS = st.dictionaries(st.sampled_from(FIELD_NAMES) | TEXT, st.integers(-2, 4) | JSON, max_size=4)
HOSTILE = st.builds(lambda m, d, f: {**f, "messages": m, "darwin": d}, MESSAGES, DARWIN, FIELDS) | JSON

#: Requests a client might really send, some within the caps and some just over: these reach the search.
WORDS = st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs", "P"]), min_size=1, max_size=30)
PLAUSIBLE_FIELDS = {
    "temperature": st.floats(0, 2) | EXTREME, "top_p": st.floats(0.01, 1) | EXTREME,
    "max_tokens": st.integers(1, 20), "max_completion_tokens": st.integers(1, 20),
    "seed": st.none() | st.integers(0, 100), "stop": st.none() | WORDS | st.lists(WORDS, max_size=5),
    "stream": st.booleans(), "presence_penalty": st.sampled_from([0, 0.0, 0.5]), "logprobs": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]), "n": st.integers(0, 2),
}
PLAUSIBLE_DARWIN = {
    "mutants": st.integers(1, 4), "keep_top": st.integers(0, 3), "replacement_period": st.integers(1, 8),
    "method": st.sampled_from(["darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace", "x"]),
    "mutation_cycles": st.integers(1, 3), "time_budget": st.none() | st.floats(0.05, 5) | EXTREME,
    "look_ahead": st.integers(0, 3), "beams_per_mutant": st.integers(1, 2),
    "reward_threshold": st.none() | st.floats(-1, 1) | EXTREME, "top_k": st.integers(0, 5) | EXTREME,
}
PLAUSIBLE = st.builds(
    lambda system, text, fields, darwin: {"model": "darwin", "messages": [*system, {"role": "user", "content": text}],
                                          **fields, "darwin": darwin},
    st.lists(st.fixed_dictionaries({"role": st.just("system"), "content": WORDS}), max_size=1), WORDS,
    st.fixed_dictionaries({}, optional=PLAUSIBLE_FIELDS),
    st.fixed_dictionaries({}, optional={k: v | v | v | SCALAR for k, v in PLAUSIBLE_DARWIN.items()}))  # 1 in 4 odd
BODY = PLAUSIBLE | HOSTILE


@pytest.fixture(scope="module")
def server():
    search = Search(FakePolicy(), KeywordReward(["cat"]), defaults.mutator("template"),
                    SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=8, seed=None))
    s = Server(search, limits=Limits(max_mutants=3, max_beams=4, max_cycles=2, max_answer_tokens=16,
                                     max_search_seconds=2, max_body_bytes=50_000))
    s.http = httpx.Client(timeout=30, headers={"Content-Type": "application/json"})
    yield s
    s.http.close()
    s.stop()


def check(reply: httpx.Response) -> None:
    assert reply.status_code < 500, reply.text
    if reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream"):
        assert reply.text.rstrip().endswith("data: [DONE]")
        return
    payload = reply.json()  # always JSON
    if reply.status_code == 200:
        assert payload["object"] == "chat.completion"
        assert isinstance(payload["choices"][0]["message"]["content"], str)
        assert isinstance(payload["usage"]["total_tokens"], int)
    else:
        assert 400 <= reply.status_code < 500
        error = payload["error"]
        assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODY)
def test_random_requests_get_a_json_4xx_or_a_completion(server, body):
    data = json.dumps(body, ensure_ascii=True)  # lone surrogates travel as \ud800 escapes
    check(server.http.post(f"{server.url}/chat/completions", content=data))


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[" * 100_00 + b"]" * 100_00, b'{"messages": NaN}',
                                  b'{"temperature": Infinity, "messages": []}', b"1e999", b'"\\ud800"',
                                  b'{"messages": [{"role": "user", "content": "hi"}], "seed": 1' + b"0" * 5000 + b"}"])
def test_bodies_that_are_not_usable_json_are_a_400(server, data):
    reply = server.http.post(f"{server.url}/chat/completions", content=data)
    assert reply.status_code == 400, reply.text
    check(reply)


USER = {"role": "user", "content": "say cat"}


@pytest.mark.parametrize("body, names", [
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text"),
    ({"messages": [USER], "seed": [1]}, "seed"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ({"messages": [USER], "darwin": {"reward_threshold": "x"}}, "darwin.reward_threshold"),
    ({"messages": [USER], "darwin": {"sampling": "x"}}, "sampling"),
    ({"messages": [USER], "darwin": {"top_k": 1.5}}, "darwin.top_k"),
    ({"messages": [USER], "darwin": {"mutants": True}}, "darwin.mutants"),
    ({"messages": [USER], "darwin": {"seed": -1}}, "darwin.seed"),
    ('{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}', "temperature"),  # inf
    ({"messages": [USER], "stream": "yes"}, "stream"),
    ({"messages": [USER], "max_tokens": 4, "darwin": {"max_new_tokens": 5}}, "max_new_tokens"),
])
def test_inputs_that_once_were_500s_are_400s_naming_the_field(server, body, names):
    data = body if isinstance(body, str) else json.dumps(body)
    reply = server.http.post(f"{server.url}/chat/completions", content=data)
    assert reply.status_code == 400, reply.text
    assert names in reply.json()["error"]["message"]


@pytest.mark.parametrize("method, path, status", [("GET", "/v1/chat/completions", 405), ("POST", "/v1/nope", 404),
                                                  ("GET", "/v1/%ED%A0%80", 404), ("DELETE", "/v1/models", 405)])
def test_wrong_routes_answer_in_openais_error_format(server, method, path, status):
    reply = server.http.request(method, f"{server.base}{path}", content=b"{}")
    assert reply.status_code == status
    check(reply)


#: Header values as bytes: any but CR and LF (which would end the header), and the ones that once gave a 500.
HEADER_VALUE = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b) | st.sampled_from([
    b"http://[::1", b"http://[evil]", b"http://]", b"null", b"http://localhost:99999", b"[::1", b"[::1]:8000x",
    b"127.0.0.1:-1", b"Bearer \xc3\xa9", b"Bearer \xff\xfe", b"Bearer", b"bearer  key", b"Basic Zm9v", b"\x00", b" ",
    b"\x7f", "ключ".encode(), b"a" * 5000]) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass").replace(
        b"\r", b"").replace(b"\n", b""))
HEADERS = st.dictionaries(st.sampled_from([b"Origin", b"Host", b"Authorization", b"Content-Type", b"X-Other"]),
                          HEADER_VALUE, max_size=4)


@pytest.fixture(scope="module")
def keyed(server):
    s = Server(server.search, api_key="fuzz-key-0123456789", limits=Limits(max_search_seconds=2))
    yield s
    s.stop()


def raw(port: int, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes = b"") -> bytes:
    """What the server answers to a request sent byte for byte (a client library would refuse odd headers)."""
    headers = {b"Host": b"127.0.0.1", **headers, b"Connection": b"close", b"Content-Length": b"%d" % len(body)}
    data = b"%s %s HTTP/1.1\r\n" % (method, path) + b"".join(b"%s: %s\r\n" % kv for kv in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data + b"\r\n" + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(headers=HEADERS, route=st.sampled_from([(b"GET", b"/health"), (b"GET", b"/v1/models"), (b"GET", b"/metrics"),
                                               (b"POST", b"/v1/chat/completions"), (b"GET", b"/nope")]))
def test_malformed_headers_get_a_4xx_never_a_5xx(keyed, headers, route):
    method, path = route
    body = json.dumps({"messages": [{"role": "user", "content": "say cat"}]}).encode() if method == b"POST" else b""
    reply = raw(keyed.port, method, path, headers, body)
    status = int(reply.split(b" ", 2)[1])
    assert status < 500, reply[:500]
    if status >= 400 and b"application/json" in reply.partition(b"\r\n\r\n")[0].lower():
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["error"]["message"]


def test_the_server_still_answers_after_the_fuzzing(server):
    assert httpx.get(f"{server.base}/health", timeout=5).status_code == 200
    good = {"messages": [{"role": "user", "content": "say cat"}]}
    check(reply := httpx.post(f"{server.url}/chat/completions", json=good, timeout=30))
    assert reply.status_code == 200
