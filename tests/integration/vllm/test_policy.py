"""OpenAIPolicy against a real vLLM: tokens mode, exact continuations, seeds, the prefix cache, session keys.

The server is the session's vLLM with the embedded SmolLM2 (tests/support/vllm.py), started as the README says:
`--no-enable-chunked-prefill`, so that seeded requests are safe. Nothing here is mocked.
"""
from __future__ import annotations

import asyncio
import httpx

from darwin_chains import Prompt, Sampling, Search, SearchConfig, TemplateMutator, defaults
from darwin_chains.testing import KeywordReward
from tests.integration.openai_policy.proxy import FaultProxy

from benchmarks.serving.servers import metric

INSTRUCTION = "Give three tips for writing a clear email."
SMALL = SearchConfig(mutants=3, keep_top=1, replacement_period=16, max_new_tokens=48, seed=1)
#: A long shared context (a retrieved document, say): every request of a search starts with it.
CONTEXT = " ".join(f"Fact {i}: the office on floor {i} opens at {7 + i % 3} AM and closes at {4 + i % 4} PM."
                   for i in range(25))


def without_timings(trace: dict) -> dict:
    trace = {k: v for k, v in trace.items() if k != "seconds"}
    trace["cycles"] = [{k: v for k, v in c.items() if k != "seconds"} | {
        "periods": [{k: v for k, v in p.items() if k != "seconds"} for p in c["periods"]]} for c in trace["cycles"]]
    return trace


def test_a_seeded_search_on_vllm_is_reproducible_and_sends_one_session_key(vllm_policy_url):
    """Run twice through a recording proxy: the same answer and trace, every request of a search with the same
    X-Session-ID (what a router hashes on), and the next search with another."""
    proxy = FaultProxy(vllm_policy_url)
    try:
        policy = defaults.policy(f"openai:smollm2@{proxy.url}")
        search = Search(policy, KeywordReward(["subject", "short", "clear"]), TemplateMutator(), SMALL)
        first = search.run(INSTRUCTION)
        first_keys = [h.get("x-session-id") for h in proxy.headers]
        proxy.reset()
        again = search.run(INSTRUCTION)
        again_keys = [h.get("x-session-id") for h in proxy.headers]
    finally:
        proxy.close()
    assert policy.mode == "tokens" and first.trace.granularity == "token"
    assert any(p.replacements for c in first.trace.cycles for p in c.periods)  # beams did adopt responses
    assert first.answer == again.answer
    assert without_timings(first.trace.to_dict()) == without_timings(again.trace.to_dict())
    assert len(first_keys) > 4 and len(set(first_keys)) == 1 and first_keys[0].startswith("darwin-")
    assert len(set(again_keys)) == 1 and again_keys[0] != first_keys[0]


def test_an_adopted_beam_continues_the_exact_tokens_of_its_donor(vllm_policy_url):
    """No text round trip: the adopted response's token ids are the donor's, and the next request sends them."""
    policy = defaults.policy(f"openai:smollm2@{vllm_policy_url}")
    beams = policy.start([Prompt.of("Describe the sea in three sentences."), Prompt.of("Describe a forest in three sentences.")], 64)
    policy.extend(beams, 12, Sampling(), seed=4)
    donor = beams[1]
    adopted = policy.adopt(beams[0], donor)
    assert adopted.state.prompt == beams[0].state.prompt and adopted.state.response == donor.state.response
    assert adopted.state.response is not donor.state.response  # its own copy: continuing it leaves the donor be
    written = list(donor.state.response)
    policy.extend([adopted], 8, Sampling(), seed=5)
    assert adopted.state.response[: len(written)] == written and donor.state.response == written
    root = vllm_policy_url.removesuffix("/v1")
    for beam in (donor, adopted):
        text = httpx.post(f"{root}/detokenize", json={"model": "smollm2", "tokens": beam.state.response},
                          timeout=30).json()["prompt"]
        assert text.replace("<|im_end|>", "") == beam.response  # the text scored is these very tokens


def test_seeded_concurrent_searches_complete_hit_the_prefix_cache_and_leave_the_server_alive(vllm_policy_url):
    """Six seeded searches at once over a long shared context: no worker crash (chunked prefill is off), every
    search answers, and the replaced beams' requests find their prefix in vLLM's cache."""
    policy = defaults.policy(f"openai:smollm2@{vllm_policy_url}")
    prompt = Prompt.of([{"role": "system", "content": CONTEXT}, {"role": "user", "content": "When does floor 3 open?"}])
    queries, hits = metric(vllm_policy_url, "vllm:prefix_cache_queries_total"), metric(
        vllm_policy_url, "vllm:prefix_cache_hits_total")

    async def searches():
        runs = [Search(policy, KeywordReward(["AM"]), TemplateMutator(), SMALL.replace(seed=s, max_new_tokens=24))
                .arun(prompt) for s in range(6)]
        return await asyncio.gather(*runs)

    results = asyncio.run(searches())
    assert all(r.answer.strip() for r in results)
    assert httpx.get(vllm_policy_url.removesuffix("/v1") + "/health", timeout=10).status_code == 200
    queried = metric(vllm_policy_url, "vllm:prefix_cache_queries_total") - queries
    hit = metric(vllm_policy_url, "vllm:prefix_cache_hits_total") - hits
    assert queried > 0 and hit / queried > 0.5, (hit, queried)


def test_a_constrained_search_on_vllm_answers_json_valid_for_the_schema(vllm_policy_url):
    """The schema travels as vLLM's structured outputs: every beam is JSON valid for it. vLLM restarts the grammar
    with every request, so the search decodes each beam whole and its trace says so."""
    import json

    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "sunny": {"type": "boolean"}},
              "required": ["city", "sunny"], "additionalProperties": False}
    policy = defaults.policy(f"openai:smollm2@{vllm_policy_url}")
    prompt = Prompt.of("Name a city and say whether it is sunny there today, as JSON.").constrained(schema)
    result = Search(policy, KeywordReward(["city"]), TemplateMutator(), SMALL.replace(max_new_tokens=40)).run(prompt)
    assert result.trace.granularity == "response"
    assert any("restarts its grammar with every request" in n for n in result.trace.notes)
    answers = [r for c in result.trace.cycles for r in c.responses] + [result.trace.seed_sample.response]
    assert len(answers) == 4 and result.answer in answers
    for answer in answers:
        jsonschema.validate(json.loads(answer), schema)
