"""`darwin-chains serve`: Darwin as an OpenAI-compatible server, queried with the real `openai` client and ChatOpenAI.

The app runs in a real uvicorn server on a loopback port. Fast tests use the fake policy and keyword reward from
`darwin_chains.testing`; one uses the embedded SmolLM2 policy, in process.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve import create_app
from darwin_chains.testing import FakePolicy, KeywordReward

from ..servers import free_port, wait_ready


class Server:
    """uvicorn in a thread, on a free loopback port."""

    def __init__(self, search: Search):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(search), host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        wait_ready(f"http://127.0.0.1:{self.port}/health", 20)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def fake_server():
    search = Search(FakePolicy(), KeywordReward(["cat"]), defaults.mutator("template"),
                    SearchConfig(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=12, seed=0))
    server = Server(search)
    yield server
    server.stop()


@pytest.fixture
def client(fake_server):
    return openai.OpenAI(base_url=fake_server.url, api_key="x", max_retries=0, timeout=30)


def ask(client, content="say cat", **kw):
    return client.chat.completions.create(model="darwin", messages=[{"role": "user", "content": content}], **kw)


def test_answers_with_usage_reward_and_trace(client):
    reply = ask(client, extra_body={"darwin": {"mutants": 4, "replacement_period": 3}})
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens > 0
    darwin = reply.model_extra["darwin"]
    assert darwin["trace"]["method"] == "darwin" and darwin["trace"]["periods"] >= 1
    assert darwin["reward"] >= 0 and darwin["policy_requests"] > 0


def test_models_and_health(fake_server, client):
    assert [m.id for m in client.models.list().data] == ["darwin:fake"]
    assert httpx.get(f"http://127.0.0.1:{fake_server.port}/health").json()["status"] == "ok"


@pytest.mark.parametrize("body, words", [
    ({"darwin": {"mutantz": 3}}, "unknown search parameter(s): mutantz"),
    ({"darwin": {"mutants": 0}}, "mutants must be"),
    ({"darwin": {"keep_top": 9}}, "keep_top"),
    ({"temperature": -1}, "temperature"),
    ({"n": 2}, "n must be 1"),
    ({"tools": [{"type": "function"}]}, "unsupported field(s) tools"),
])
def test_bad_parameters_are_a_400_that_says_which(client, body, words):
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, extra_body=body)
    assert words in err.value.response.json()["error"]["message"]


def test_concurrent_requests_get_their_own_answers(client, fake_server):
    def run(seed, mutants):
        return ask(client, content=f"say cat number {seed}", seed=seed, extra_body={"darwin": {"mutants": mutants}})

    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(run, [1, 2, 1, 2], [2, 3, 2, 3]))
    for reply, seed, mutants in zip(replies, [1, 2, 1, 2], [2, 3, 2, 3]):
        trace = reply.model_extra["darwin"]["trace"]
        assert trace["cycles"] == 1
    # same request, same answer; the prompts differ per seed, so each answer was searched for its own request
    assert replies[0].choices[0].message.content == replies[2].choices[0].message.content
    assert replies[1].choices[0].message.content == replies[3].choices[0].message.content
    alone = ask(client, content="say cat number 2", seed=2, extra_body={"darwin": {"mutants": 3}})
    assert alone.choices[0].message.content == replies[1].choices[0].message.content


def test_streaming_sends_the_answer_then_done(client):
    chunks = list(ask(client, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = ask(client)
    # the fake policy writes until max_tokens: the answer was cut off, and both paths say so
    assert text.strip() and chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason == "length"
    ended = ask(client, extra_body={"darwin": {"stop": ["cat"]}}, content="say the cat")
    assert ended.choices[0].finish_reason == "stop" and "cat" not in ended.choices[0].message.content


def test_langchain_chat_openai_invokes_it(fake_server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=fake_server.url, api_key="x", model="darwin", max_retries=0, timeout=30)
    message = llm.invoke("say cat")
    assert type(message).__name__ == "AIMessage" and message.content.strip()


def test_embedded_policy_behind_the_server(smollm2_policy):
    search = Search(smollm2_policy, KeywordReward(["email"]), defaults.mutator("template"),
                    SearchConfig(mutants=2, keep_top=1, replacement_period=8, max_new_tokens=16, seed=0))
    server = Server(search)
    try:
        client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
        started = time.monotonic()
        reply = client.chat.completions.create(
            model="darwin", messages=[{"role": "user", "content": "Give three tips for writing a clear email."}],
            max_tokens=16, extra_body={"darwin": {"replacement_period": 8}})
        assert reply.choices[0].message.content.strip() and reply.usage.completion_tokens > 0
        assert json.dumps(reply.model_extra["darwin"]) and time.monotonic() - started < 120
    finally:
        server.stop()
