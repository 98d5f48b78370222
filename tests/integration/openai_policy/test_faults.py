"""Retries, fatal errors and the deadline, through a fault-injecting proxy in front of the real `transformers serve`.

The proxy is a real HTTP hop: it answers 429 (Retry-After: 1), 500, 401, stalls past the client's timeout or drops
the connection, then forwards to the real server. Nothing here is mocked.
"""
from __future__ import annotations

import json
import time

import pytest

from darwin_chains import PolicyError, Search, SearchConfig
from darwin_chains.mutators import TemplateMutator
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.retry import RetryPolicy
from darwin_chains.testing import KeywordReward

from .conftest import SAMPLING

INSTRUCTION = "Give three tips for writing a clear email."
#: Per request: far more than the real server takes for a request here, however slow or busy the machine.
TIMEOUT = 10.0
SMALL = SearchConfig(mutants=2, keep_top=1, replacement_period=8, max_new_tokens=16, seed_sample=False, seed=3)


def policy_through(proxy, smollm2_dir, **retry) -> OpenAIPolicy:
    retry = {"attempts": 5, "initial_backoff": 0.1, "jitter": 0.05, "timeout": TIMEOUT, **retry}
    # completions mode, named: auto would first probe the server for tokens mode, a request the faults would meet
    return OpenAIPolicy.from_url(str(smollm2_dir), proxy.url, tokenizer=smollm2_dir, extra_body=SAMPLING,
                                 retry=RetryPolicy(**retry), mode="completions")


def test_search_survives_transient_faults_and_counts_every_retry(proxy, smollm2_dir):
    proxy.faults = ["429", "500", "stall", "drop"]
    proxy.stall = TIMEOUT + 5  # past the per-request timeout
    started = time.monotonic()
    result = Search(policy_through(proxy, smollm2_dir), KeywordReward(["email"]), TemplateMutator(), SMALL).run(
        INSTRUCTION)
    trace = result.trace
    assert result.answer.strip()
    assert proxy.injected == ["429", "500", "stall", "drop"]
    assert trace.policy_retries == 4  # one retry per injected fault
    assert trace.policy_requests == len(proxy.forwarded) == 4  # 2 beams x 2 periods, nothing lost or repeated
    prompts = [body["prompt"] for body in proxy.forwarded]
    assert len(set(prompts)) == len(prompts)  # no beam was continued twice from the same text
    assert sum(not p.endswith("assistant\n") for p in prompts) == 2  # the second period continues both beams
    assert time.monotonic() - started < TIMEOUT + 60


def test_bad_key_fails_at_once_without_retrying(proxy, smollm2_dir):
    proxy.always = "401"
    policy = policy_through(proxy, smollm2_dir)
    started = time.monotonic()
    with pytest.raises(PolicyError) as err:
        Search(policy, KeywordReward(), TemplateMutator(), SMALL).run(INSTRUCTION)
    assert time.monotonic() - started < 15  # no hang; that nothing was retried is counted below
    message = str(err.value)
    assert "401" in message and proxy.url in message and "OPENAI_API_KEY" in message
    # At most one request per beam, none retried: the beams' requests go out side by side, and the first 401 can
    # end the search before the second beam's request has left (a race, not a retry).
    assert 1 <= len(proxy.injected) <= 2 and not proxy.forwarded
    assert len(set(proxy.refused)) == len(proxy.refused)  # no request was sent twice


def test_exhausted_retries_name_the_last_status(proxy, smollm2_dir):
    proxy.faults = ["500"] * 3
    policy = policy_through(proxy, smollm2_dir, attempts=3)
    from darwin_chains import Prompt, Sampling

    with pytest.raises(PolicyError, match=r"answered 500 .* on all 3 attempts"):
        policy.extend(policy.start([Prompt.of("Hi")], 4), 4, Sampling(), seed=0)


def test_a_server_that_answers_500_and_then_stops_answering_is_named_as_crashed(proxy, smollm2_dir):
    """As a vLLM worker that dies mid-run: the 500 it answered first (status and message) stays in the error, which
    says the server likely crashed and what to do, instead of only "could not be reached"."""
    proxy.faults = ["500", "drop", "drop"]
    policy = policy_through(proxy, smollm2_dir, attempts=3)
    from darwin_chains import Prompt, Sampling

    with pytest.raises(PolicyError) as err:
        policy.extend(policy.start([Prompt.of("Hi")], 4), 4, Sampling(), seed=0)
    message = str(err.value)
    assert "answered 500 Internal Server Error (injected 500), then could not be reached" in message, message
    assert "remaining 2 of 3 attempts" in message and "likely crashed" in message
    assert "--no-enable-chunked-prefill" in message and "send_seed=false" in message
    assert err.value.status == 500


def test_deadline_returns_the_best_so_far_from_a_slow_server(proxy, smollm2_dir):
    """Every request takes 1.5 s: two periods fit in the 4 s budget, the third's requests get the second left as
    their timeout, and the search returns then, with the text decoded so far."""
    proxy.delay = 1.5
    timeout = 8.0
    config = SMALL.replace(max_new_tokens=48, time_budget=4.0)
    policy = policy_through(proxy, smollm2_dir, timeout=timeout)
    assert policy.supports_continuation  # its mode probes, before the search and its budget
    started = time.monotonic()
    result = Search(policy, KeywordReward(["email"]), TemplateMutator(), config).run(INSTRUCTION)
    elapsed = time.monotonic() - started
    assert result.trace.stopped == "time_budget" and result.answer.strip()
    assert not result.finished  # a partial response: the budget ran out before any beam finished
    assert elapsed < config.time_budget + 2  # a wall: no request outlives the budget
    assert len(proxy.forwarded) < 2 * 48 // 8  # it stopped early
    assert json.dumps(result.trace.to_dict())
