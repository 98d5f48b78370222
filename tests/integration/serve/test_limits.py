"""Operator caps a client cannot raise, and the neutral fields common clients send, on a real loopback server."""
from __future__ import annotations

import httpx
import openai
import pytest

from darwin_chains.cli.serve.limits import Limits
from darwin_chains.errors import ConfigError

from tests.support.searches import fake_search

from .conftest import chat
from .slow_server import slow_search


@pytest.fixture(scope="module")
def server():
    from .conftest import Server

    s = Server(fake_search(), limits=Limits(max_mutants=4, max_beams=6, max_cycles=2, max_answer_tokens=32))
    yield s
    s.stop()


def post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize("fields, cap, flag", [
    ({"darwin": {"mutants": 100000}}, "max_mutants", "--max-mutants"),
    ({"darwin": {"mutants": 4, "beams_per_mutant": 2}}, "max_beams", "--max-beams"),
    ({"darwin": {"mutation_cycles": 100000}}, "max_cycles", "--max-cycles"),
    ({"max_tokens": 33}, "max_answer_tokens", "--max-answer-tokens"),
    ({"darwin": {"look_ahead": 1000}}, "max_answer_tokens", "--max-answer-tokens"),
])
def test_a_request_over_a_cap_is_a_400_naming_the_cap_and_its_flag(server, fields, cap, flag):
    reply = post(server, chat(**fields))
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert cap in message and flag in message


def test_a_request_at_the_caps_is_answered(server):
    reply = post(server, chat(max_tokens=32, darwin={"mutants": 3, "beams_per_mutant": 2, "mutation_cycles": 2}))
    assert reply.status_code == 200, reply.text
    assert reply.json()["darwin"]["trace"]["cycles"] == 2


def test_the_limits_are_shown_to_clients(server):
    view = httpx.get(f"{server.url}/darwin/limits").json()["limits"]
    assert view["max_mutants"]["value"] == 4 and view["max_mutants"]["flag"] == "--max-mutants"
    assert view["max_body_bytes"]["value"] == 1_000_000
    (entry,) = httpx.get(f"{server.url}/models").json()["data"]
    assert entry["darwin"]["limits"]["max_cycles"] == 2


def test_the_operators_defaults_must_fit_the_caps():
    with pytest.raises(ConfigError, match="max-mutants"):
        from darwin_chains.cli.serve import create_app

        create_app(fake_search(mutants=9, keep_top=1))


def test_a_client_time_budget_only_lowers_the_operators(serve):
    """Counted in periods, which a budget bounds whatever the host's speed: the seed sample's first step and every
    period take at least one 0.1 s step, so the operator's 0.55 s stops a search after at most 5 periods, and a
    0.05 s budget runs out during the first, which is then never scored."""
    unbounded = post(serve(slow_search(delay=0.0, max_new_tokens=60)), chat()).json()["darwin"]["trace"]
    assert unbounded["stopped"] is None and unbounded["periods"] > 5, unbounded
    server = serve(slow_search(delay=0.1, max_new_tokens=60), limits=Limits(max_search_seconds=0.55))
    for budget in (None, 100.0):
        reply = post(server, chat(darwin={"time_budget": budget}))
        assert reply.status_code == 200, reply.text
        trace = reply.json()["darwin"]["trace"]
        assert trace["stopped"] == "time_budget" and 1 <= trace["periods"] <= 5, trace
    lower = post(server, chat(darwin={"time_budget": 0.05})).json()["darwin"]["trace"]
    assert lower["stopped"] == "time_budget" and lower["periods"] == 0, lower


@pytest.mark.parametrize("fields", [
    {"presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False, "top_logprobs": 0},
    {"response_format": {"type": "text"}, "stop": None, "tools": [], "tool_choice": "none"},
    {"presence_penalty": None, "logit_bias": {}, "user": "u1", "stream_options": None},
])
def test_the_neutral_fields_clients_send_are_accepted(server, fields):
    reply = post(server, chat(**fields))
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("fields, name", [
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1}, "frequency_penalty"),
    ({"logprobs": True}, "logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
])
def test_non_neutral_fields_are_a_400_naming_them(server, fields, name):
    reply = post(server, chat(**fields))
    assert reply.status_code == 400 and name in reply.json()["error"]["message"]


def test_unseeded_requests_get_fresh_seeds_recorded_in_the_reply(server):
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=30)
    seeds = {client.chat.completions.create(**chat()).model_extra["darwin"]["seed"] for _ in range(4)}
    assert len(seeds) == 4
    seeded = [client.chat.completions.create(**chat(), seed=7) for _ in range(2)]
    assert [r.model_extra["darwin"]["seed"] for r in seeded] == [7, 7]
    assert seeded[0].choices[0].message.content == seeded[1].choices[0].message.content


def test_the_serve_command_leaves_the_seed_to_each_request_unless_given():
    from darwin_chains.cli import _parser, config_from_args

    assert config_from_args(_parser().parse_args(["serve"])).seed is None
    assert config_from_args(_parser().parse_args(["serve", "--seed", "3"])).seed == 3


def test_stop_is_mapped_onto_the_search(server):
    reply = post(server, chat(stop=["zzz-never"], darwin={"mutants": 2}))
    assert reply.status_code == 200, reply.text
    assert post(server, chat(stop=[""])).status_code == 400


def test_a_prompt_over_the_cap_or_a_search_too_big_to_hold_is_a_400_naming_the_flag(serve):
    server = serve(slow_search(delay=0.0), limits=Limits(max_prompt_tokens=50, max_held_tokens=2000))
    long = post(server, chat(content="word " * 400))
    assert long.status_code == 400 and "--max-prompt-tokens" in long.json()["error"]["message"]
    big = post(server, chat(max_tokens=900, darwin={"mutants": 4}))  # 5 rows x (prompt + 900) > 2000
    assert big.status_code == 400 and "--max-held-tokens" in big.json()["error"]["message"]
    assert post(server, chat(max_tokens=16)).status_code == 200
