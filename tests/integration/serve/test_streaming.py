"""`stream: true` sends settled text as it settles, keep-alives while nothing does, and OpenAI's usage chunk when
asked; the models load as the server starts, and /health and /ready say so."""
from __future__ import annotations

import json
import threading
import time

import httpx
import openai

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.cli.serve import streaming
from darwin_chains.testing import KeywordReward

from .conftest import chat
from .slow_server import GatedSlowPolicy, slow_search

#: Six periods of 0.3 s; with one survivor and no seed sample, every beam shares the survivor's text after a
#: replacement, so the answer settles period by period.
SETTLING = {"seed_sample": False, "keep_top": 1, "replacement_period": 4}


def streamed(server, body: dict) -> list[tuple[float, str]]:
    """(seconds since the request, line) for every non-empty line of the event stream."""
    lines, started = [], time.monotonic()
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body, timeout=60) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line:
                lines.append((time.monotonic() - started, line))
    return lines


def chunks(lines: list[tuple[float, str]]) -> list[tuple[float, dict]]:
    return [(t, json.loads(line[6:])) for t, line in lines if line.startswith("data: {")]


def test_settled_text_arrives_a_period_or_more_before_the_search_ends(serve):
    server = serve(slow_search(delay=0.3, max_new_tokens=24))
    lines = streamed(server, chat(stream=True, seed=1, darwin=SETTLING))
    events = chunks(lines)
    content = [(t, c["choices"][0]["delta"].get("content")) for t, c in events if c["choices"]]
    texts = [(t, text) for t, text in content if text]
    finished_at = next(t for t, c in events if c["choices"] and c["choices"][0]["finish_reason"])
    assert len(texts) >= 2 and texts[0][0] <= finished_at - 0.3, texts  # at least one period early
    assert lines[-1][1] == "data: [DONE]"
    whole = httpx.post(f"{server.url}/chat/completions", json=chat(seed=1, darwin=SETTLING), timeout=60).json()
    assert "".join(text for _, text in texts) == whole["choices"][0]["message"]["content"]


def test_keep_alives_go_out_while_nothing_has_settled(serve, monkeypatch):
    monkeypatch.setattr(streaming, "KEEP_ALIVE", 0.1)
    server = serve(slow_search(delay=0.6, max_new_tokens=12))  # nothing settles before the first scoring round
    lines = streamed(server, chat(stream=True, seed=1))
    first_text = next(t for t, c in chunks(lines) if c["choices"] and c["choices"][0]["delta"].get("content"))
    assert sum(line == ": keep-alive" and t < first_text for t, line in lines) >= 3


def test_include_usage_adds_a_usage_chunk_and_the_openai_client_reads_it(serve):
    server = serve(slow_search(delay=0.05))
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
    with_usage = list(client.chat.completions.create(model="darwin", messages=[{"role": "user", "content": "cat"}],
                                                     stream=True, stream_options={"include_usage": True}))
    assert with_usage[-1].choices == [] and with_usage[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in with_usage[:-1])
    without = list(client.chat.completions.create(model="darwin", messages=[{"role": "user", "content": "cat"}],
                                                  stream=True))
    assert all(c.usage is None for c in without) and without[-1].choices[0].finish_reason


def test_a_failure_mid_stream_is_an_error_event_and_the_stream_ends(serve):
    class Failing(GatedSlowPolicy):
        def extend(self, beams, max_new_tokens, sampling, seed):
            if self.steps >= 2:
                raise RuntimeError("the device went away")
            return super().extend(beams, max_new_tokens, sampling, seed)

    search = Search(Failing(0.05), KeywordReward(["cat"]), defaults.mutator("template"),
                    SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=20, seed=0))
    lines = streamed(serve(search), chat(stream=True))
    errors = [c["error"] for _, c in chunks(lines) if "error" in c]
    assert len(errors) == 1 and errors[0]["code"] == "502" and "the device went away" in errors[0]["message"]
    assert lines[-1][1] == "data: [DONE]"


class SlowToLoad(KeywordReward):
    """A reward whose first score waits for `loaded`, like a model loading."""

    def __init__(self):
        super().__init__(["cat"])
        self.loaded, self.calls = threading.Event(), 0

    def score(self, prompt, responses):
        self.calls += 1
        self.loaded.wait(60)
        return super().score(prompt, responses)


def test_models_load_at_start_up_and_health_says_loading_until_then(serve):
    reward = SlowToLoad()
    search = Search(GatedSlowPolicy(0.01), reward, defaults.mutator("template"),
                    SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=8, seed=0))
    server = serve(search, wait=False)
    base = server.base
    assert _eventually(lambda: reward.calls == 1)  # the warm-up, before any request
    loading = httpx.get(f"{base}/health", timeout=5)
    assert loading.status_code == 503 and loading.json()["status"] == "loading"
    assert httpx.get(f"{base}/ready", timeout=5).json()["problems"] == ["the models are still loading"]
    reply: dict = {}
    asking = threading.Thread(target=lambda: reply.update(httpx.post(f"{server.url}/chat/completions", json=chat(),
                                                                     timeout=60).json()))
    asking.start()
    time.sleep(0.3)
    assert asking.is_alive() and reward.calls == 1  # the request waits for the load, not in it
    reward.loaded.set()
    asking.join(60)
    assert reply["choices"][0]["message"]["content"] and httpx.get(f"{base}/health", timeout=5).status_code == 200
    assert httpx.get(f"{base}/ready", timeout=5).json() == {"status": "ready", "problems": []}


def test_ready_reports_a_component_that_cannot_be_reached(serve):
    class Unreachable(GatedSlowPolicy):
        def health(self):
            return "the upstream at http://127.0.0.1:9 could not be reached"

    server = serve(Search(Unreachable(0.01), KeywordReward(["cat"]), defaults.mutator("template"),
                          SearchConfig(mutants=2, keep_top=1, max_new_tokens=8)))
    ready = httpx.get(f"{server.base}/ready", timeout=5)
    assert ready.status_code == 503 and ready.json() == {
        "status": "unavailable", "problems": ["the upstream at http://127.0.0.1:9 could not be reached"]}
    assert httpx.get(f"{server.base}/health", timeout=5).status_code == 200  # alive, only not ready


def _eventually(check, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
