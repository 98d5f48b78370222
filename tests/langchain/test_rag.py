"""`mark_question`: it finds the marked copy of the question in a RAG prompt and refuses what it cannot mark. The RAG
tests on a real vector store with MiniLM embeddings are in tests/integration/langchain/test_rag.py.
"""
from __future__ import annotations

import pytest
from darwin_chains import ConfigError, InputError
from langchain_core.prompts import ChatPromptTemplate

from langchain_darwin import mark_question
from langchain_darwin._convert import to_request


def test_mark_question_finds_the_marked_copy_and_refuses_what_it_cannot_mark():
    prompt = ChatPromptTemplate.from_messages([("system", "Topic: {question}"),
                                               ("human", "{question}? Context: {context}. Again: {question}")])
    value = mark_question(prompt).invoke({"question": "Why", "context": "a Why in the context"})
    request = to_request(value)
    assert (request.prompt.request, request.prompt.start) == ("Why", len("Why? Context: a Why in the context. Again: "))
    with pytest.raises(ConfigError, match="no input variable 'query'"):
        mark_question(prompt, "query")
    outside = ChatPromptTemplate.from_messages([("system", "Question: {question}"), ("human", "Context: {context}")])
    with pytest.raises(InputError, match="outside its final human message"):
        mark_question(outside).invoke({"question": "Why?", "context": "c"})
    edited = value.to_messages()
    edited[-1] = edited[-1].model_copy(update={"content": "something else"})
    with pytest.raises(InputError, match="not in the final message"):
        to_request(edited)
