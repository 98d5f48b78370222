"""Inputs to darwin prompts and drafts, and the commit logic that turns settled text into stream chunks."""
from __future__ import annotations

import pytest
from darwin_chains import InputError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate

from langchain_darwin._convert import to_darwin, to_request
from darwin_chains.search.stream import Commit, cut


def test_a_string_is_one_user_message():
    request = to_request("Name a colour.")
    assert request.prompt.messages == ({"role": "user", "content": "Name a colour."},)
    assert request.prompt.request == "Name a colour." and request.drafts == []


def test_a_chat_prompt_value_keeps_the_system_message_out_of_the_request():
    prompt = ChatPromptTemplate.from_messages([("system", "Context: {context}"), ("human", "{question}")])
    request = to_request(prompt.invoke({"context": "Cats purr.", "question": "Why do cats purr?"}))
    assert [m["role"] for m in request.prompt.messages] == ["system", "user"]
    assert request.prompt.messages[0]["content"] == "Context: Cats purr."
    assert request.prompt.request == "Why do cats purr?"


def test_a_string_prompt_value_is_one_user_message():
    request = to_request(PromptTemplate.from_template("Tell me about {topic}.").invoke({"topic": "owls"}))
    assert request.prompt.instruction == "Tell me about owls."


def test_a_trailing_ai_message_is_a_draft_not_a_turn():
    request = to_request([SystemMessage("Be brief."), HumanMessage("Why is the sky blue?"),
                          AIMessage("Because of the sea.")])
    assert request.drafts == ["Because of the sea."]
    assert [m["role"] for m in request.prompt.messages] == ["system", "user"]


def test_earlier_ai_turns_stay_in_the_conversation():
    request = to_request([("human", "hi"), ("ai", "hello"), ("human", "how are you")])
    assert [m["role"] for m in request.prompt.messages] == ["user", "assistant", "user"]
    assert request.drafts == []


def test_a_dict_puts_context_in_a_system_message_and_history_before_the_question():
    request = to_request({"question": "Why do cats purr?", "draft": "They are happy.", "context": "Cats purr.",
                          "history": [HumanMessage("hi"), AIMessage("hello")]})
    roles = [m["role"] for m in request.prompt.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "Cats purr." in request.prompt.messages[0]["content"]
    assert request.prompt.request == "Why do cats purr?"
    assert request.drafts == ["They are happy."]


@pytest.mark.parametrize("value, words", [
    ({"query": "typo"}, "unknown input key"),
    ({"question": 3}, "'question' must be a string"),
    (42, "got int"),
    ([HumanMessage("hi"), ToolMessage("42", tool_call_id="1")], "ToolMessage"),
    ([HumanMessage(content=[{"type": "image", "url": "http://x/y.png"}])], "text-only"),
    ([AIMessage("a draft with no question")], "end with a user message"),
])
def test_bad_inputs_fail_with_the_cause(value, words):
    with pytest.raises(InputError, match=words):
        to_request(value)


def test_text_content_blocks_are_joined():
    message = HumanMessage(content=[{"type": "text", "text": "Name "}, {"type": "text", "text": "a colour."}])
    assert to_darwin([message])[0]["content"] == "Name a colour."


def test_commit_sends_only_new_settled_text_and_the_rest_at_the_end():
    commit = Commit()
    pieces = [commit.settled("The cat "), commit.settled("The cat "), commit.settled("The cat sat "),
              commit.final("The cat sat on the mat.")]
    assert pieces == ["The cat ", "", "sat ", "on the mat."]
    assert "".join(pieces) == "The cat sat on the mat."


def test_commit_holds_back_what_may_start_a_stop_sequence():
    commit = Commit(stop=["\nUser:"])
    assert commit.settled("Paris is nice.\nUs") == "Paris is nice."
    assert commit.settled("Paris is nice.\nUser: and") == ""
    assert commit.final("Paris is nice.\nUser: and more") == ""
    commit = Commit(stop=["END"])
    pieces = [commit.settled("one E"), commit.settled("one Ever "), commit.final("one Ever twoEND three")]
    assert "".join(pieces) == "one Ever two" == cut("one Ever twoEND three", ["END"])
