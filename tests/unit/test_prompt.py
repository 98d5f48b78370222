"""The prompt: normalisation, the empty-instruction check, and the request span that mutation may rewrite."""
from __future__ import annotations

import pytest

from darwin_chains import InputError, Prompt


def test_strings_and_messages_normalise():
    assert Prompt.of("hi").messages == ({"role": "user", "content": "hi"},)
    p = Prompt.of([("system", "be brief"), {"role": "user", "content": "hi"}])
    assert p.messages[0] == {"role": "system", "content": "be brief"} and p.request == "hi" and p.start == 0


def test_only_the_request_span_is_rewritten():
    text = "Context: the question is about cats.\n\nQuestion: what do cats eat?\n\nAnswer:"
    p = Prompt.of(text, request="what do cats eat?")
    mutated = p.with_request("Explain what cats eat.")
    assert mutated.instruction == text.replace("what do cats eat?", "Explain what cats eat.")
    assert mutated.with_request("x").instruction == text.replace("what do cats eat?", "x")  # span moves along


def test_an_explicit_start_picks_the_occurrence():
    text = "Query: cats?\nExisting answer: cats? Cats eat fish."
    first = Prompt.of(text, request="cats?", start=text.index("cats?"))
    assert first.with_request("dogs?").instruction == "Query: dogs?\nExisting answer: cats? Cats eat fish."
    assert Prompt.of(text, request="cats?").with_request("dogs?").instruction.endswith("dogs? Cats eat fish.")
    with pytest.raises(InputError, match="span of the final user message"):
        Prompt.of(text, request="cats?", start=3)


@pytest.mark.parametrize("bad, message", [
    ("", "instruction is empty"),
    ([{"role": "user", "content": "\n\t "}], "instruction is empty"),
    ([{"role": "assistant", "content": "hello"}], "must end with a user message"),
    ([{"role": "robot", "content": "hello"}], "role 'robot'"),
    ([{"role": "user", "content": 3}], "content must be text"),
    (42, "a prompt is a string or a list of messages"),
])
def test_bad_prompts_are_refused_clearly(bad, message):
    with pytest.raises(InputError, match=message):
        Prompt.of(bad)


def test_request_must_be_in_the_final_message():
    with pytest.raises(InputError, match="span of the final user message"):
        Prompt.of("what do cats eat?", request="dogs")
    with pytest.raises(InputError, match="request to mutate is empty"):
        Prompt.of("what do cats eat?", request="  ")


def test_context_is_everything_but_the_request():
    assert Prompt.of("What do cats eat?").context == ""
    rag = Prompt.of([("system", "Context:\nThe pool opens at 7:15 AM."), ("user", "When does it open?")])
    assert rag.context == "Context:\nThe pool opens at 7:15 AM."
    turns = Prompt.of([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"),
                       ("user", "Notes: cats purr.\n\nQuestion: why?\n\nAnswer in one line.")], request="why?")
    assert turns.context == "Be brief.\n\nHi\n\nHello!\n\nNotes: cats purr.\n\nQuestion:\n\nAnswer in one line."
    assert turns.with_request("Explain why.").context == turns.context  # mutation never touches the context
    assert Prompt.of([("system", "  "), ("user", "Why?")]).context == ""
