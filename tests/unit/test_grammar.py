"""Constrained decoding on a tiny real Llama with a real byte-level tokenizer: every beam is valid JSON for its
schema, whatever the (random) weights would write, and a replaced beam carries its donor's grammar state."""
from __future__ import annotations

import json

import jsonschema
import pytest

from darwin_chains import ConfigError, HFPolicy, Prompt, Sampling, Search, SearchConfig
from darwin_chains.testing import KeywordReward

VERDICT = {"type": "object", "properties": {"ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}},
           "required": ["ok", "level"], "additionalProperties": False}
SAMPLING = Sampling(temperature=1.0)


@pytest.fixture
def policy(tiny_llama):
    return HFPolicy.from_pretrained(tiny_llama, device="cpu")


def prompt(text: str = "Is it fine?") -> Prompt:
    return Prompt.of(text).constrained(VERDICT)


def test_every_constrained_beam_finishes_as_json_valid_for_its_schema(policy):
    beams = policy.start([prompt(), prompt("Rate it."), Prompt.of("Say anything.")], 40)
    policy.extend(beams, 40, SAMPLING, seed=3)
    for beam in beams[:2]:
        assert beam.finished and beam.finish_reason is None, beam.response  # ended by the grammar, not the length
        jsonschema.validate(json.loads(beam.response), VERDICT)
    with pytest.raises(json.JSONDecodeError):  # the unconstrained row beside them writes what the weights say
        json.loads(beams[2].response)


def test_an_adopted_response_brings_its_own_copy_of_the_grammar_state(policy):
    donor, taker = policy.start([prompt(), prompt("Rate it.")], 40)
    policy.extend([donor, taker], 3, SAMPLING, seed=1)
    adopted = policy.adopt(taker, donor)
    assert adopted.state.constraint.matcher is not donor.state.constraint.matcher and adopted.response == donor.response
    policy.extend([donor, adopted], 40, SAMPLING, seed=2)  # the two go on apart from the shared prefix
    for beam in (donor, adopted):
        assert beam.finished
        jsonschema.validate(json.loads(beam.response), VERDICT)


@pytest.mark.cpu_kernels
def test_a_constrained_seeded_row_decodes_the_same_alone_and_beside_others(tiny_llama):
    policy = HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=True)
    alone = policy.start([prompt()], 40)
    policy.extend(alone, 40, SAMPLING, seed=7)
    together = policy.start([prompt(), Prompt.of("Say anything."), prompt("Rate it.")], 40)
    policy.engine.submit([together[1].state, together[2].state], 40, SAMPLING, 9)  # beside, with other rows
    policy.extend(together[:1], 40, SAMPLING, seed=7)
    assert together[0].response == alone[0].response


def test_a_search_answers_valid_json_and_mutants_keep_the_schema(policy):
    mutator = lambda text, n: [f"{text} (variant {i})" for i in range(n)]  # noqa: E731
    started, start = [], policy.start
    policy.start = lambda prompts, n: started.extend(prompts) or start(prompts, n)
    config = SearchConfig(seed=0, mutants=3, keep_top=1, replacement_period=4, max_new_tokens=40)
    result = Search(policy, KeywordReward(["true"]), mutator, config).run(prompt())
    jsonschema.validate(json.loads(result.answer), VERDICT)
    assert len({p.request for p in started}) == 4  # the seed sample and three variants, all under the schema
    assert {p.json_schema for p in started} == {prompt().json_schema}


def test_a_schema_that_cannot_constrain_is_a_config_error_before_decoding(policy):
    with pytest.raises(ConfigError, match="cannot constrain decoding"):
        policy.start([Prompt.of("Hi").constrained({"type": "bogus"})], 8)


def test_the_schema_travels_with_the_prompt():
    p = prompt("Question: Is it fine?")
    assert p.with_request("Is it really fine?").json_schema == p.json_schema
    assert Prompt.of(p, request="Is it fine?").json_schema == p.json_schema
    assert p.to_dict()["json_schema"] == VERDICT and "json_schema" not in Prompt.of("Hi").to_dict()


def test_a_row_near_its_length_limit_closes_its_json_instead_of_being_cut_off(policy):
    """A free-text field that random weights never end: without closing, 24 tokens cut the object off."""
    schema = {"type": "object", "properties": {"note": {"type": "string"}}, "required": ["note"],
              "additionalProperties": False}
    beams = policy.start([Prompt.of(f"Write note {i}.").constrained(schema) for i in range(4)], 24)
    policy.extend(beams, 24, SAMPLING, seed=5)
    for beam in beams:
        assert len(beam.state.response_ids) <= 24
        jsonschema.validate(json.loads(beam.response), schema)  # complete, within the limit
    assert any(json.loads(b.response)["note"] for b in beams)  # and the notes are not all cut to nothing
