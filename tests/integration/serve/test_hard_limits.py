"""The time cap is a wall and a client that leaves stops the work, whatever one step or one prompt would cost: on the
embedded SmolLM2, behind a real server, with the requests that once ran 6 to 26 times over a 5 s cap."""
from __future__ import annotations

import resource
import socket
import time

import httpx
import pytest

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve.limits import Limits
from darwin_chains.testing import KeywordReward

from .conftest import chat

CAP = 5.0
WORDS = "The committee reviewed the annual budget line by line and asked each department to explain its changes. "


@pytest.fixture(scope="module")
def counted(smollm2_policy):
    """The embedded policy's engine, its forward passes counted: (policy, passes)."""
    engine, passes = smollm2_policy.engine, []
    model = engine.model

    def forward(*args, **kwargs):
        passes.append(time.monotonic())
        return model(*args, **kwargs)

    forward.device = model.device
    engine.model = forward
    yield smollm2_policy, passes
    engine.model = model


def searcher(policy) -> Search:
    return Search(policy, KeywordReward(["budget"]), defaults.mutator("template"), SearchConfig(seed=0))


@pytest.mark.parametrize("body", [
    chat(content=WORDS * 240, max_tokens=8),  # about 4,000 words: 6 beams' prompts to encode, 30k tokens
    chat(content="Give three tips for writing a clear email.", max_tokens=256,
         darwin={"mutants": 8, "beams_per_mutant": 2, "replacement_period": 256}),  # one period of 17 rows
    chat(content="Give three tips for writing a clear email.", max_tokens=64, darwin={"look_ahead": 1024}),
], ids=["4000-words", "17-rows-one-period", "look-ahead-1024"])
def test_every_request_returns_within_twice_the_cap(serve, counted, body):
    policy, _ = counted
    server = serve(searcher(policy), limits=Limits(max_search_seconds=CAP, max_prompt_tokens=8192,
                                                  max_held_tokens=10**6))
    started = time.monotonic()
    reply = httpx.post(f"{server.url}/chat/completions", json=body, timeout=120)
    took = time.monotonic() - started
    assert took < 2 * CAP, took
    if reply.status_code == 504:  # the cap ran out while the prompt was still being encoded: no text to answer with
        message = reply.json()["error"]["message"]
        assert "before it decoded any text" in message and "--max-search-seconds 5" in message, message
        assert body["max_tokens"] == 8  # only the 4,000-word prompt can take the whole cap to encode
        return
    assert reply.status_code == 200, reply.text
    assert reply.json()["darwin"]["trace"]["stopped"] == "time_budget"
    assert reply.json()["choices"][0]["message"]["content"]  # the best answer so far, never an empty one


def test_a_prompt_over_the_default_cap_is_refused_at_once(serve, counted):
    policy, passes = counted
    server = serve(searcher(policy))  # the default --max-prompt-tokens
    before = len(passes)
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(content=WORDS * 470), timeout=60)
    assert reply.status_code == 400 and "--max-prompt-tokens" in reply.json()["error"]["message"]
    assert len(passes) == before  # nothing was encoded


def test_a_client_leaving_during_a_long_prompt_frees_the_cpu_within_two_seconds(serve, counted):
    policy, passes = counted
    server = serve(searcher(policy), limits=Limits(max_prompt_tokens=8192, max_held_tokens=10**6))
    words = WORDS * 120  # about 2,000 tokens: 6 beams' prompts take many chunks to encode
    raw = f'{{"model": "darwin", "messages": [{{"role": "user", "content": "{words}"}}], "max_tokens": 8}}'.encode()
    before = len(passes)
    client = socket.create_connection(("127.0.0.1", server.port))
    client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    encoding = time.monotonic() + 30
    while len(passes) < before + 3:  # a few chunks in: the prompts are being encoded
        assert time.monotonic() < encoding, "the server never started encoding"
        time.sleep(0.01)
    client.close()
    left = time.monotonic()
    engine = policy.engine
    while engine._rows or engine._prefilling or engine._waiting:
        assert time.monotonic() - left < 10, "the search's rows never left"
        time.sleep(0.01)
    assert time.monotonic() - left < 2.0 and passes[-1] - left < 2.0  # gone within a chunk, no pass after
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(1.0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime) < 0.5  # and the CPU is idle again
    assert server.health()["running"] == 0
