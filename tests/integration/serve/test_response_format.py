"""`response_format` on a real server: a local policy answers JSON valid for the schema, sent with the real `openai`
client; a policy that cannot constrain its output refuses the request instead of ignoring the schema."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.testing import KeywordReward

from .conftest import chat

CITY = {"type": "object", "additionalProperties": False, "required": ["city", "population"],
        "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}}}


@pytest.mark.parametrize("response_format, schema", [
    ({"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}}, CITY),
    ({"type": "json_object"}, {"type": "object"}),
], ids=["json_schema", "json_object"])
def test_the_embedded_policy_answers_json_valid_for_the_schema(serve, smollm2_policy, response_format, schema):
    search = Search(smollm2_policy, KeywordReward(["Paris"]), defaults.mutator("template"),
                    SearchConfig(seed=0, mutants=2, keep_top=1, replacement_period=8, max_new_tokens=24))
    server = serve(search)
    client = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="darwin", response_format=response_format, messages=[
        {"role": "user", "content": "Name the largest city of France and its population, in JSON."}])
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_a_policy_that_cannot_constrain_refuses_a_schema_and_a_bad_format_is_a_400(serve):
    import httpx

    server = serve()  # a scripted policy: it cannot constrain decoding
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(response_format={"type": "json_object"}))
    assert reply.status_code == 400 and "cannot constrain" in reply.json()["error"]["message"]
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(response_format={"type": "json_schema"}))
    assert reply.status_code == 400 and "json_schema" in reply.json()["error"]["message"]
    assert httpx.get(f"{server.url}/models").status_code == 200
