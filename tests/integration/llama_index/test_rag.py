"""RAG through LlamaIndex: a real VectorStoreIndex with MiniLM embeddings, query and chat engines over DarwinLLM.

The point under test: mutation rewrites the user's query only, and the retrieved text reaches every beam exactly
as LlamaIndex wrote it. A spy around the policy records every prompt a beam starts from.
"""
from __future__ import annotations

import pytest
from darwin_chains import LLMMutator, TemplateMutator
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.core.prompts.default_prompt_selectors import DEFAULT_TEXT_QA_PROMPT_SEL
from llama_index.llms.darwin import DarwinLLM

from tests.support.searches import FAST, ScriptedChatPolicy, SpyPolicy

FOLLOW_UP = "And how does the dance show the distance?"


class Scrambler:
    """A mutator that rewrites aggressively (upper-cases and reverses everything it is given) and records it."""

    name = "scrambler"

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, instruction: str, n: int) -> list[str]:
        self.seen.append(instruction)
        return [f"REWRITE {i}: {instruction.upper()[::-1]}" for i in range(n)]


def scripted_llm_mutator(seen: list[str]) -> LLMMutator:
    """darwin_chains.LLMMutator over a scripted 'model' that answers the mutation prompt with aggressive rewrites."""

    def rewrite(prompt) -> str:
        instruction = prompt.instruction.rsplit("Instruction: ", 1)[-1]
        seen.append(instruction)
        return "\n".join(f"{i}. {instruction.upper()[::-1]} ({i})" for i in range(1, 4))

    return LLMMutator(ScriptedChatPolicy(rewrite))


def spy_llm(mutator) -> tuple[DarwinLLM, SpyPolicy]:
    spy = SpyPolicy(FakePolicy())
    return DarwinLLM(policy=spy, reward=KeywordReward(), mutator=mutator, **FAST), spy


def make_mutator(kind: str):
    """The mutator, and the list of instructions it was shown (None when it keeps no record)."""
    if kind == "template":
        return TemplateMutator(), None
    if kind == "scrambler":
        scrambler = Scrambler()
        return scrambler, scrambler.seen
    seen: list[str] = []
    return scripted_llm_mutator(seen), seen


def test_retrieval_returns_the_relevant_document(minilm_index, rag_cookbook):
    retriever = minilm_index.as_retriever(similarity_top_k=1)
    assert "waggle dance" in retriever.retrieve(rag_cookbook.QUESTION)[0].text
    assert "hieroglyphic" in retriever.retrieve(rag_cookbook.FOLLOW_UP)[0].text
    assert "8,849" in retriever.retrieve("How tall is the highest mountain?")[0].text


@pytest.mark.parametrize("kind", ["template", "scrambler", "llm-mutator"])
def test_query_engine_never_rewrites_the_retrieved_context(minilm_index, rag_cookbook, kind):
    mutator, seen = make_mutator(kind)
    llm, spy = spy_llm(mutator)
    response = minilm_index.as_query_engine(llm=llm, similarity_top_k=1).query(rag_cookbook.QUESTION)
    node = response.source_nodes[0].text
    assert "waggle dance" in node and str(response)
    assert len(spy.prompts) == 4  # three mutants and the seed sample
    assert all(node in p.instruction for p in spy.prompts)
    assert rag_cookbook.QUESTION not in node  # so the check above is not met by the query alone
    rewritten = [p for p in spy.prompts if p.request != rag_cookbook.QUESTION]
    assert len(rewritten) == 3 and all(p.request in p.instruction for p in rewritten)
    if seen is not None:  # the mutator was shown the query and nothing else
        assert seen == [rag_cookbook.QUESTION]
        assert all(p.request.startswith(("REWRITE", rag_cookbook.QUESTION.upper()[::-1])) for p in rewritten)


def test_without_the_query_mark_the_same_mutator_would_rewrite_the_context(minilm_index, rag_cookbook):
    node = minilm_index.as_retriever(similarity_top_k=1).retrieve(rag_cookbook.QUESTION)[0].text
    args = dict(context_str=node, query_str=rag_cookbook.QUESTION)
    llm, spy = spy_llm(Scrambler())
    llm.chat(DEFAULT_TEXT_QA_PROMPT_SEL.format_messages(llm=llm, **args))  # formatted by hand: no mark
    assert sum(node in p.instruction for p in spy.prompts) == 1  # only the seed sample kept it
    llm, spy = spy_llm(Scrambler())
    llm.predict(DEFAULT_TEXT_QA_PROMPT_SEL, **args)  # what query engines call: marked
    assert all(node in p.instruction for p in spy.prompts)


@pytest.mark.parametrize("chat_mode", ["context", "condense_plus_context"])
def test_chat_engine_keeps_context_and_history_verbatim(minilm_index, rag_cookbook, chat_mode):
    scrambler = Scrambler()
    llm, spy = spy_llm(scrambler)
    engine = minilm_index.as_chat_engine(chat_mode=chat_mode, llm=llm, similarity_top_k=1)
    first = engine.chat(rag_cookbook.QUESTION)
    node = first.source_nodes[0].text
    assert "waggle dance" in node and first.response
    assert all(node in p.messages[0]["content"] and p.messages[0]["role"] == "system" for p in spy.prompts)
    assert scrambler.seen == [rag_cookbook.QUESTION]
    if chat_mode == "context":  # condense_plus_context first condenses the follow-up: test_calls.py covers it
        spy.prompts.clear()
        engine.chat(FOLLOW_UP)
        history = [{"role": "user", "content": rag_cookbook.QUESTION}, {"role": "assistant", "content": first.response}]
        assert all(list(p.messages[1:3]) == history for p in spy.prompts)
        assert scrambler.seen[-1] == FOLLOW_UP


def test_streaming_query_engine_streams_the_search_answer(minilm_index, rag_cookbook):
    llm, spy = spy_llm(Scrambler())
    llm.seed_sample = False  # nothing settles while an independent sample could still win
    answer = str(minilm_index.as_query_engine(llm=llm, similarity_top_k=1).query(rag_cookbook.QUESTION))
    spy.prompts.clear()
    streaming = minilm_index.as_query_engine(llm=llm, similarity_top_k=1, streaming=True).query(rag_cookbook.QUESTION)
    pieces = list(streaming.response_gen)
    assert len([p for p in pieces if p]) > 1 and "".join(pieces) == answer
    node = streaming.source_nodes[0].text
    assert spy.prompts and all(node in p.instruction for p in spy.prompts)


async def test_async_query_engine(minilm_index, rag_cookbook):
    llm, spy = spy_llm(Scrambler())
    response = await minilm_index.as_query_engine(llm=llm, similarity_top_k=1).aquery(rag_cookbook.QUESTION)
    assert str(response) == str(minilm_index.as_query_engine(llm=llm, similarity_top_k=1).query(rag_cookbook.QUESTION))
    assert all(response.source_nodes[0].text in p.instruction for p in spy.prompts)
