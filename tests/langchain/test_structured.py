"""ChatDarwin.with_structured_output: the schema's checks, the gate in a real search, and the embedded model.

The gate's logic runs on scripted policies (a chat model whose answers are fixed, and darwin's ScriptedPolicy,
which writes token by token and so has partial answers to rank); the searches on the embedded SmolLM2 are in
tests/integration/langchain/test_structured.py.
"""
from __future__ import annotations

import pytest
from darwin_chains import ConfigError
from darwin_chains.rewards.gate import VALID, tier
from darwin_chains.testing.scripted import ScriptedPolicy
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from typing_extensions import TypedDict

from langchain_darwin import ChatDarwin, StructuredOutputError
from langchain_darwin.structured import Schema

from tests.support.langchain_models import Person

QUESTION = "Name a famous mathematician."
VALID_JSON = '{"name": "Ada Lovelace", "born": 1815}'


class PersonDict(TypedDict):
    name: str
    born: int


PERSON_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
                 "required": ["name", "born"]}


def longest(instruction: str, response: str) -> float:
    """Prefers long answers: chatty invalid ones win unless the gate holds."""
    return float(len(response))


@pytest.mark.parametrize("schema", [Person, PersonDict, PERSON_SCHEMA])
def test_a_schema_checks_parses_and_explains(schema):
    spec = Schema(schema)
    assert spec.valid(VALID_JSON) and spec.valid(f"Sure! Here it is:\n```json\n{VALID_JSON}\n```")
    assert not spec.valid('{"name": "Ada Lovelace"}') and not spec.valid('{"name": "Ada", "born": "soon"}')
    assert spec.viable("") and spec.viable("Sure, here is the JSON:") and spec.viable('{"name": "Ad')
    assert not spec.viable("I would say " * 20) and not spec.viable('{"name": "Ada"} and that is all')
    parsed = spec.parse(VALID_JSON)
    assert parsed == (Person(name="Ada Lovelace", born=1815) if schema is Person else
                      {"name": "Ada Lovelace", "born": 1815})
    with pytest.raises(OutputParserException, match="born"):
        spec.parse('{"name": "Ada"}')


def test_format_instructions_sit_outside_the_question():
    spec = Schema(Person)
    messages = spec.instruct([SystemMessage("Be brief."), HumanMessage(QUESTION)])
    assert messages[0].content == ("Be brief.\n\nAnswer with a single JSON object with these fields: name (string); "
                                   "born (integer).")
    assert messages[1].content == f'{QUESTION}\n\nReply in JSON only, like this: {{"name": "...", "born": 0}}'
    assert messages[1].additional_kwargs == {"darwin_request": QUESTION, "darwin_request_start": 0}


def test_the_gate_returns_the_best_valid_answer_not_the_best_answer():
    answers = ["Well, there are many famous mathematicians, and choosing one is hard. " * 3,
               '{"name": "Euler", "born": 1707}', VALID_JSON, '{"name": "Gauss"}']
    chat = ChatDarwin(policy=FakeListChatModel(responses=answers), reward=longest, mutants=4, keep_top=1,
                      seed_sample=False, max_new_tokens=64, include_trace=True)
    out = chat.with_structured_output(Person, include_raw=True).invoke(QUESTION)
    assert out["parsed"] == Person(name="Ada Lovelace", born=1815) and out["parsing_error"] is None
    raw = out["raw"]
    finals = raw.response_metadata["darwin"]["trace"]["cycles"][0]["final_rewards"]
    assert [tier(r) for r in finals] == [0, VALID, VALID, 0]  # the chatty answer scored highest before the gate
    assert chat.with_structured_output(Person).invoke(QUESTION) == Person(name="Ada Lovelace", born=1815)


def test_viability_keeps_a_json_prefix_above_a_hopeless_answer_during_replacement():
    """Token by token: after the first period the valid beam is only a prefix, and a complete object lacking a
    field is longer, yet the prefix ranks first, so with keep_top=1 every beam adopts it and the answer
    validates."""
    policy = ScriptedPolicy(['{"name": "Gauss"} is the one I would pick for you today, and a fine pick',
                             '{"name": "Ada Lovelace", "born": 1815}', "Gauss was born in 1777 in Brunswick"])
    chat = ChatDarwin(policy=policy, reward=longest, mutator="none", method="sample-replace", mutants=3,
                      keep_top=1, replacement_period=2, max_new_tokens=16, include_trace=True)
    out = chat.with_structured_output(Person, include_raw=True).invoke(QUESTION)
    assert out["parsed"] == Person(name="Ada Lovelace", born=1815)
    first = out["raw"].response_metadata["darwin"]["trace"]["cycles"][0]["periods"][0]
    assert first["top"] == [1] and [tier(r) for r in first["rewards"]] == [0, 1, 1]


def test_no_valid_answer_raises_with_the_best_text():
    chat = ChatDarwin(policy=FakeListChatModel(responses=['{"name": "Gauss"}', "Gauss, surely."]), reward=longest,
                      mutants=2, keep_top=1, seed_sample=False, max_new_tokens=64)
    with pytest.raises(StructuredOutputError, match="validates as Person") as error:
        chat.with_structured_output(Person).invoke(QUESTION)
    out = chat.with_structured_output(Person, include_raw=True).invoke(QUESTION)
    assert out["parsed"] is None and isinstance(out["parsing_error"], StructuredOutputError)
    # The best invalid text: a short answer might still have become JSON, a complete object lacking a field never.
    assert error.value.llm_output == out["raw"].content == "Gauss, surely."


def test_bad_structured_output_arguments_fail_at_once():
    chat = ChatDarwin(policy="embedded")
    with pytest.raises(ConfigError, match="pydantic model"):
        chat.with_structured_output(int)
    with pytest.raises(ConfigError, match="method"):
        chat.with_structured_output(Person, method="xml")
    with pytest.raises(ConfigError, match="unknown"):
        chat.with_structured_output(Person, include_rwa=True)
