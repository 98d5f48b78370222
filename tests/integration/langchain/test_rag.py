"""RAG: a real InMemoryVectorStore over the cookbook's documents, embedded with the packaged MiniLM.

Checks that retrieval finds the relevant document, and that mutation rewrites the question only: the retrieved
context reaches every beam's prompt exactly as retrieved, in a system message or, with `mark_question`, in the
one human message of a hub-style RAG prompt. A spy around the policy records the prompts its beams start from.
`mark_question`'s own checks run without a model in tests/langchain/test_rag.py.
"""
from __future__ import annotations

import math

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough

from langchain_darwin import DarwinAlign, MiniLMEmbeddings, mark_question

from tests.support.cookbooks import load_cookbook
from tests.support.searches import SMALL, SpyPolicy

rag = load_cookbook("langchain_rag")


@pytest.fixture(scope="module")
def retriever(minilm):
    return rag.build_retriever(MiniLMEmbeddings(minilm))


@pytest.mark.parametrize("question, expected", [
    (rag.QUESTION, "waggle dance"),
    ("Who won two Nobel Prizes?", "Marie Curie"),
    ("How tall is the highest mountain?", "8,849 metres"),
])
def test_retrieval_finds_the_relevant_document(retriever, question, expected):
    assert expected in retriever.invoke(question)[0].page_content


def test_embeddings_are_unit_vectors_and_async_agrees(minilm):
    import asyncio
    import math

    embeddings = MiniLMEmbeddings(minilm)
    vector = embeddings.embed_query("cats purr")
    assert len(vector) == 384 and math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-4)
    assert asyncio.run(embeddings.aembed_query("cats purr")) == pytest.approx(vector)


def test_the_context_reaches_every_beam_unchanged(retriever, smollm2_policy):
    policy = SpyPolicy(smollm2_policy)
    align = DarwinAlign(policy=policy, reward="default", include_trace=True, **SMALL)
    chain = {"context": retriever | rag.format_docs, "question": RunnablePassthrough()} | rag.PROMPT | align
    message = chain.invoke(rag.QUESTION)
    context = rag.format_docs(retriever.invoke(rag.QUESTION))
    system = f"Answer the question using only this context.\n\nContext:\n{context}"
    assert len(policy.prompts) == 3 + 1  # a beam per mutant, and the seed sample of the original question
    for prompt in policy.prompts:
        assert prompt.messages[0] == {"role": "system", "content": system}
        assert rag.QUESTION in prompt.instruction and system not in prompt.instruction
    instructions = message.response_metadata["darwin"]["trace"]["cycles"][0]["instructions"]
    assert len(set(instructions)) == 3 and all(rag.QUESTION in i for i in instructions)
    assert message.content.strip() and math.isfinite(message.response_metadata["reward"])
    grounding = message.response_metadata["darwin"]["grounding"]  # the answer's verdict against the context
    assert grounding["grounded"] == (not grounding["unsupported"]) and 0 <= grounding["score"] <= 1


def test_a_dict_with_retrieved_context_keeps_it_out_of_mutation(retriever):
    policy = SpyPolicy(FakePolicy())
    align = DarwinAlign(policy=policy, reward=KeywordReward(["dance"]), mutants=3, keep_top=1, max_new_tokens=8)
    ({"context": retriever | rag.format_docs, "question": RunnablePassthrough()} | align).invoke(rag.QUESTION)
    context = rag.format_docs(retriever.invoke(rag.QUESTION))
    assert all(context in p.messages[0]["content"] and p.messages[0]["role"] == "system" for p in policy.prompts)
    assert all(context not in p.instruction for p in policy.prompts)


#: The hub's rlm/rag-prompt: one human message holding the instructions, the question and the context.
HUB_RAG = ChatPromptTemplate.from_messages([("human", (
    "You are an assistant for question-answering tasks. Use the following pieces of retrieved context to answer "
    "the question. If you don't know the answer, just say that you don't know. Use three sentences maximum and "
    "keep the answer concise.\nQuestion: {question} \nContext: {context} \nAnswer:"))])


@pytest.mark.parametrize("marked", [True, False])
def test_a_marked_question_is_all_that_mutation_rewrites_in_a_hub_rag_prompt(retriever, marked):
    policy = SpyPolicy(FakePolicy())
    align = DarwinAlign(policy=policy, reward=KeywordReward(["dance"]), include_trace=True, mutants=3, keep_top=1,
                        max_new_tokens=8)
    prompt = mark_question(HUB_RAG) if marked else HUB_RAG
    message = ({"context": retriever | rag.format_docs, "question": RunnablePassthrough()} | prompt | align) \
        .invoke(rag.QUESTION)
    original = HUB_RAG.invoke({"question": rag.QUESTION, "context": rag.format_docs(retriever.invoke(rag.QUESTION))}
                              ).to_messages()[0].text
    instructions = message.response_metadata["darwin"]["trace"]["cycles"][0]["instructions"]
    assert len(policy.prompts) == 4 and len(set(instructions)) == 3
    if not marked:  # the whole message, context and all, is the request: every mutant rewrites it
        assert all(p.request == p.instruction for p in policy.prompts)
        return
    start = original.index(f"Question: {rag.QUESTION} ") + len("Question: ")
    for p in policy.prompts:
        assert p.messages[0]["content"] == original[:start] + p.request + original[start + len(rag.QUESTION):]
        assert p.start == start and rag.QUESTION in p.request
    assert {p.request for p in policy.prompts} == {rag.QUESTION, *instructions}
    assert message.response_metadata["darwin"]["trace"]["prompt"]["messages"][0]["content"] == original
