"""Who may drive the server: the key, Host and Origin, the content type and the body size, on real loopback servers."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve import create_app
from darwin_chains.cli.serve.guard import check_key, is_loopback, redact
from darwin_chains.cli.serve.limits import Limits
from darwin_chains.errors import ConfigError
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.retry import RetryPolicy
from darwin_chains.testing import KeywordReward

from tests.support.searches import fake_search

from .conftest import Server, chat, free_port

KEY = "test-server-key-0123456789"


@pytest.fixture(scope="module")
def keyed():
    server = Server(fake_search(seed=0), api_key=KEY, limits=Limits(max_body_bytes=20_000))
    yield server
    server.stop()


def post(server, body, *, key: str | None = KEY, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers |= kw.pop("headers", {})
    return httpx.post(f"{server.url}/chat/completions", json=body, headers=headers, timeout=30, **kw)


def test_without_the_key_a_401_in_openais_format_and_with_it_an_answer(keyed):
    for key in (None, "wrong-key"):
        reply = post(keyed, chat(), key=key)
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
        error = reply.json()["error"]
        assert error["type"] == "authentication_error" and "Authorization: Bearer" in error["message"]
        assert KEY not in reply.text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.url, api_key="nope", max_retries=0).models.list()
    client = openai.OpenAI(base_url=keyed.url, api_key=KEY, max_retries=0, timeout=30)
    assert client.chat.completions.create(**chat()).choices[0].message.content.strip()
    assert httpx.get(f"{keyed.base}/health").status_code == 200  # probes carry no key


def test_binding_beyond_loopback_without_a_key_refuses_to_start():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "darwin_chains.cli", "serve", "--host", "0.0.0.0", "--port",
                           str(free_port())], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DARWIN_CHAINS_POLICY": "embedded"})
    assert done.returncode == 2 and time.monotonic() - started < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--api-key" in lines[0] and "--insecure-no-auth" in lines[0], done.stderr


@pytest.mark.parametrize("host, ok", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
                                      ("127.3.4.5", True), ("0.0.0.0", False), ("evil.example", False),
                                      ("10.0.0.1", False)])
def test_loopback_names(host, ok):
    assert is_loopback(host) is ok


@pytest.mark.parametrize("headers, status", [
    ({"Host": "evil.example"}, 421),                              # DNS rebinding: the page's own name
    ({"Host": "evil.example:{port}"}, 421),
    ({"Origin": "http://evil.example"}, 403),                     # a page on another site posting here
    ({"Origin": "null"}, 403),
    ({"Host": "localhost:{port}"}, 200),
    ({"Host": "[::1]:{port}", "Origin": "http://localhost:3000"}, 200),
])
def test_a_loopback_server_answers_only_loopback_hosts_and_origins(keyed, headers, status):
    headers = {k: v.format(port=keyed.port) for k, v in headers.items()}
    reply = post(keyed, chat(), headers=headers)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert set(reply.json()["error"]) == {"message", "type", "code"}


def test_a_cross_site_text_plain_post_never_runs_a_search(keyed):
    body = json.dumps(chat())
    for headers in ({"Origin": "http://evil.example", "Host": "evil.example"}, {"Origin": "http://evil.example"},
                    {}):
        headers |= {"Content-Type": "text/plain", "Authorization": f"Bearer {KEY}"}
        reply = httpx.post(f"{keyed.url}/chat/completions", content=body, headers=headers, timeout=10)
        assert reply.status_code in (403, 415, 421), reply.text
    reply = httpx.post(f"{keyed.url}/chat/completions", content=body, timeout=10,
                       headers={"Content-Type": "text/plain", "Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 415 and "application/json" in reply.json()["error"]["message"]


def test_a_body_over_the_limit_is_a_413_before_it_is_parsed(keyed):
    big = chat("cat " * 10_000)  # about 40 kB; this server takes 20 kB
    reply = post(keyed, big)
    assert reply.status_code == 413 and "--max-body-bytes" in reply.json()["error"]["message"]

    def chunks():  # no Content-Length: the size is counted while reading
        data = json.dumps(big).encode()
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    reply = httpx.post(f"{keyed.url}/chat/completions", content=chunks(), timeout=10,
                       headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 413
    with pytest.raises(openai.APIStatusError) as err:
        openai.OpenAI(base_url=keyed.url, api_key=KEY, max_retries=0).chat.completions.create(**big)
    assert err.value.status_code == 413
    assert post(keyed, chat()).status_code == 200  # and the server still answers


def test_a_big_body_never_freezes_health(serve):
    """/health is polled while big bodies are posted one after another (encoded beforehand, so the test's own work
    holds nothing up): the polls go on, nine in ten answered within a second, and none waits seconds behind a body."""
    server = serve(fake_search(seed=0))
    raw = json.dumps(chat("cat " * 240_000)).encode()  # just under the default 1 MB
    waits, done = [], threading.Event()

    def poll():
        while not done.is_set():
            started = time.monotonic()
            httpx.get(f"{server.base}/health", timeout=10)
            waits.append(time.monotonic() - started)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        replies = [httpx.post(f"{server.url}/chat/completions", content=raw, timeout=60,
                              headers={"Content-Type": "application/json"}) for _ in range(3)]
    finally:
        done.set()
        poller.join(20)
    assert all(r.status_code in (200, 400) for r in replies), [r.text for r in replies]
    waits.sort()
    assert waits and waits[int(0.9 * (len(waits) - 1))] < 1.0 and waits[-1] < 5.0, waits


class EchoingUpstream:
    """An OpenAI-compatible upstream that refuses every key with a 401 whose body echoes the key, as OpenAI's does."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                data = json.dumps({"error": {"message": f"Incorrect API key provided: {key}.", "type": "auth",
                                             "code": "invalid_api_key"}}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_keys_never_reach_the_client_or_the_log(serve, caplog):
    upstream_key = "sk-upstream-secret-abcdef123456"
    upstream = EchoingUpstream()
    try:
        policy = OpenAIPolicy.from_url("m", upstream.url, api_key=upstream_key, mode="chat",
                                       retry=RetryPolicy(attempts=1, timeout=5))
        search = Search(policy, KeywordReward(["cat"]), defaults.mutator("template"),
                        SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=8, seed=0))
        server = serve(search, api_key=KEY)
        with caplog.at_level(logging.WARNING):
            reply = post(server, chat())
        assert reply.status_code == 502 and reply.json()["error"]["type"] == "server_error"
        assert "401" in reply.json()["error"]["message"]
        for text in (reply.text, caplog.text):
            assert upstream_key not in text and KEY not in text
    finally:
        upstream.close()


def test_redact_scrubs_given_keys_and_key_shaped_text():
    text = redact("key sk-abcdef1234567 and Bearer tok.en-123 and mine-0123", ["mine-0123"])
    assert "sk-abcdef1234567" not in text and "tok.en-123" not in text and "mine-0123" not in text
    assert redact("a plain sentence about keys and tokens") == "a plain sentence about keys and tokens"


def test_the_serve_command_reads_its_key_from_the_environment_and_checks_its_caps_before_loading():
    done = subprocess.run([sys.executable, "-m", "darwin_chains.cli", "serve", "--host", "0.0.0.0", "--port",
                           str(free_port()), "--mutants", "10"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DARWIN_CHAINS_API_KEY": "from-env-0123456789"})
    assert done.returncode == 2, done.stderr  # the key let it past the bind check; the cap stopped it
    assert done.stderr.count("\n") == 1 and "--max-mutants" in done.stderr


SCRIPT = """
import sys
from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve import run
from darwin_chains.cli.serve.limits import Limits
from darwin_chains.testing import FakePolicy, KeywordReward
search = Search(FakePolicy(), KeywordReward(["cat"]), defaults.mutator("template"),
                SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=8, seed=None))
run(search, port=int(sys.argv[1]), limits=Limits(max_mutants=2), api_key=sys.argv[2])
"""


def test_run_serves_with_the_key_and_the_limits_it_is_given(tmp_path):
    port, key = free_port(), "run-key-0123456789"
    (tmp_path / "serve.py").write_text(SCRIPT)
    process = subprocess.Popen([sys.executable, str(tmp_path / "serve.py"), str(port), key],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 401
        entry = httpx.get(f"{base}/v1/models", headers=auth, timeout=5).json()["data"][0]
        assert entry["darwin"]["limits"]["max_mutants"] == 2
        reply = httpx.post(f"{base}/v1/chat/completions", json=chat(darwin={"mutants": 3}), headers=auth, timeout=30)
        assert reply.status_code == 400 and "--max-mutants" in reply.json()["error"]["message"]
        reply = httpx.post(f"{base}/v1/chat/completions", json=chat(), headers=auth, timeout=30)
        assert reply.status_code == 200 and reply.json()["darwin"]["seed"] is not None
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate(timeout=10)
    assert key.encode() not in err
    assert b'"GET /v1/models HTTP/1.1" 401 ' in err and b'"POST /v1/chat/completions HTTP/1.1" 400 ' in err  # access log


@pytest.mark.parametrize("origin", ["http://[::1", "http://[evil]", "http://]", "https://[::1:8000"])
def test_a_malformed_origin_is_a_400_on_every_route_before_the_key_check(keyed, origin):
    """urlsplit raises on these: once a 500 on every route."""
    for method, path in (("GET", "/health"), ("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/nope"),
                         ("POST", "/v1/chat/completions")):
        reply = httpx.request(method, f"{keyed.base}{path}", headers={"Origin": origin}, json=chat(), timeout=10)
        assert reply.status_code == 400, (path, reply.text)
        error = reply.json()["error"]
        assert error["code"] == "invalid_origin" and "Origin" in error["message"]
        assert "scheme://host" in error["message"]


def test_a_non_ascii_key_matches_the_utf8_bytes_a_client_sends(serve):
    key = "clé-secrète-0123"
    server = serve(fake_search(seed=0), api_key=key)
    reply = httpx.get(f"{server.url}/models", headers={"Authorization": b"Bearer " + key.encode("utf-8")}, timeout=5)
    assert reply.status_code == 200
    for sent in (key.encode("latin-1"), b"cl\xc3", b"\xff\xfe\x80"):
        reply = httpx.get(f"{server.url}/models", headers={"Authorization": b"Bearer " + sent}, timeout=5)
        assert reply.status_code == 401


@pytest.mark.parametrize("key", [" leading-space-0123", "trailing-space-0123 ", "   ", "new\nline-0123", "nul\x00-0123",
                                 "del\x7f-0123"])
def test_a_key_no_header_can_carry_is_refused_at_start_up(key):
    with pytest.raises(ConfigError, match="API key"):
        check_key(key)
    with pytest.raises(ConfigError, match="API key"):
        create_app(fake_search(seed=0), api_key=key)


def test_the_serve_command_refuses_a_key_no_header_can_carry_before_loading():
    done = subprocess.run([sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DARWIN_CHAINS_API_KEY": "key with a newline\n"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "API key" in done.stderr and "control character" in done.stderr
