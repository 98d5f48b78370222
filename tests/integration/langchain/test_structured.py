"""ChatDarwin.with_structured_output on the embedded SmolLM2: every beam decodes under the schema's grammar, so every
candidate comes back valid. The schema's checks and the gate's logic run on scripted policies in
tests/langchain/test_structured.py.
"""
from __future__ import annotations

import jsonschema
from darwin_chains.rewards.gate import VALID, tier

from langchain_darwin import ChatDarwin

from tests.support.langchain_models import Person


def test_structured_output_on_the_embedded_model(smollm2_policy):
    """The embedded policy decodes every beam under the schema's grammar: whatever SmolLM2 would write, every
    candidate is a complete, valid object (even at 32 tokens), the best by reward wins, and the format
    instructions are never mutated."""
    chat = ChatDarwin(policy=smollm2_policy, reward="relevance", mutants=2, keep_top=1, replacement_period=8,
                      max_new_tokens=32, seed=1, include_trace=True)
    out = chat.with_structured_output(Person, include_raw=True).invoke("Name a famous mathematician and the year "
                                                                       "they were born.")
    raw = out["raw"]
    trace = raw.response_metadata["darwin"]["trace"]
    candidates = [r for c in trace["cycles"] for r in c["final_rewards"]] + [trace["seed_sample"]["reward"]]
    assert raw.response_metadata["reward"] == max(candidates)
    assert isinstance(out["parsed"], Person) and out["parsing_error"] is None
    assert all(tier(r) == VALID for r in candidates)  # valid by construction, not by luck
    assert trace["prompt"]["json_schema"]["required"] == ["name", "born"]
    assert trace["prompt"]["messages"][-1]["content"].endswith('like this: {"name": "...", "born": 0}')
    assert all("JSON" not in i for i in trace["cycles"][0]["instructions"])


def test_every_kind_of_field_comes_back_valid_from_the_embedded_model(smollm2_policy):
    """Integers, enums, arrays and optional fields, at a length limit that cuts free text off."""
    schema = {"title": "Review", "type": "object", "additionalProperties": False, "required": ["stars", "mood", "tags"],
              "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5},
                             "mood": {"enum": ["happy", "neutral", "sad"]},
                             "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                             "summary": {"type": "string"}}}
    chat = ChatDarwin(policy=smollm2_policy, reward="relevance", method="best-of-n", mutants=3, max_new_tokens=24,
                      seed=2)
    review = chat.with_structured_output(schema).invoke("Review a pizza you ate yesterday.")
    jsonschema.validate(review, schema)
