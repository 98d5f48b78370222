"""The server's face of the groundedness verdict: the reply's `darwin` object carries it, `on_ungrounded` goes in
that object like any search parameter, and "raise" with nothing grounded is a 422 that names what was made up.
Driven by the shipped fakes and a scripted checker; the real check is tested in tests/integration/test_grounding.py."""
from __future__ import annotations

import httpx
import pytest

from darwin_chains import Search, SearchConfig
from darwin_chains.testing import FakePolicy, KeywordReward
from tests.support.grounding import Checker

from .conftest import Server

MESSAGES = [{"role": "system", "content": "Context: the cat sleeps 16 hours a day."},
            {"role": "user", "content": "tell me about the cat"}]


@pytest.fixture(scope="module")
def server():
    search = Search(FakePolicy(stop=0.02), KeywordReward(), lambda i, n: [f"{i} v{k}" for k in range(n)],
                    SearchConfig(mutants=2, keep_top=1, replacement_period=4, max_new_tokens=16, seed=0),
                    grounding=Checker(limit=0))  # every answer is ungrounded
    s = Server(search)
    yield s
    s.stop()


def post(server, **darwin) -> httpx.Response:
    body = {"model": "darwin", "messages": MESSAGES, **({"darwin": darwin} if darwin else {})}
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=30)


def test_the_reply_carries_the_verdict(server):
    reply = post(server)
    assert reply.status_code == 200
    assert reply.json()["darwin"]["grounding"] == {"grounded": False, "score": 0.0, "unsupported": ["cat"],
                                                   "checked": 1}


def test_abstain_answers_that_the_context_does_not_say(server):
    reply = post(server, on_ungrounded="abstain")
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "The context does not say."
    assert reply.json()["darwin"]["grounding"]["action"] == "abstained"


def test_raise_is_a_422_naming_what_the_answer_made_up(server):
    reply = post(server, on_ungrounded="raise")
    assert reply.status_code == 422
    message = reply.json()["error"]["message"]
    assert "no candidate answer is grounded" in message and "cat" in message and "on_ungrounded" in message


def test_a_misspelt_mode_is_a_400_naming_the_choices(server):
    reply = post(server, on_ungrounded="abstian")
    assert reply.status_code == 400 and "answer, flag, abstain, raise" in reply.json()["error"]["message"]
