"""RAG: a real InMemoryVectorStore over the cookbook's documents, embedded with the packaged MiniLM.

Checks that retrieval finds the relevant document, and that mutation rewrites the question only: the retrieved
context reaches every beam's prompt exactly as retrieved.
"""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from langchain_core.runnables import RunnablePassthrough

from langchain_darwin import DarwinAlign, MiniLMEmbeddings

from ..cookbooks import load_cookbook
from .conftest import SMALL

rag = load_cookbook("langchain_rag")


class Recording:
    """A policy that records the prompts its beams start from, then hands them to the real policy."""

    def __init__(self, policy):
        self.policy, self.prompts = policy, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def start(self, prompts, max_new_tokens):
        self.prompts += prompts
        return self.policy.start(prompts, max_new_tokens)


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


@pytest.mark.integration
def test_the_context_reaches_every_beam_unchanged(retriever, smollm2_policy):
    policy = Recording(smollm2_policy)
    align = DarwinAlign(policy=policy, reward=rag.GroundedReward(), include_trace=True, **SMALL)
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
    assert message.content.strip() and message.response_metadata["reward"] > 0


def test_a_dict_with_retrieved_context_keeps_it_out_of_mutation(retriever):
    policy = Recording(FakePolicy())
    align = DarwinAlign(policy=policy, reward=KeywordReward(["dance"]), mutants=3, keep_top=1, max_new_tokens=8)
    ({"context": retriever | rag.format_docs, "question": RunnablePassthrough()} | align).invoke(rag.QUESTION)
    context = rag.format_docs(retriever.invoke(rag.QUESTION))
    assert all(context in p.messages[0]["content"] and p.messages[0]["role"] == "system" for p in policy.prompts)
    assert all(context not in p.instruction for p in policy.prompts)
