"""DarwinRefine: a LangGraph node that refines an agent's final answer with Darwin, the answer a candidate.

An agent loop (a model that calls tools, then answers) ends with an AI message that calls no tool. This node runs
one Darwin search over the conversation: the tool calls and their results become context (a system message before
the question), the final answer joins the candidates as a draft, so the refined answer never scores below it. For
`create_agent`, `DarwinRefineMiddleware` (in `langchain_darwin.middleware`) does the same after the agent.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Optional

from darwin_chains import ConfigError, InputError
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field

from .runnable import DarwinAlign


class DarwinRefine(RunnableSerializable[dict, dict]):
    """A LangGraph node: state with "messages" in, `{"messages": [refined AIMessage]}` out.

    Example:
        >>> from langgraph.graph import END, START, MessagesState, StateGraph
        >>> from langgraph.prebuilt import ToolNode, tools_condition
        >>> graph = StateGraph(MessagesState)
        >>> graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
        >>> graph.add_node("tools", ToolNode(tools))
        >>> graph.add_node("refine", DarwinRefine(DarwinAlign(reward=..., mutants=3, max_new_tokens=64)))
        >>> graph.add_edge(START, "agent")
        >>> graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "refine"})
        >>> graph.add_edge("tools", "agent")
        >>> graph.add_edge("refine", END)

    Only a final answer is refined: when the last message is not an AI message, or it calls tools, the node
    returns no update. The refined message keeps the draft's id, so with the `add_messages` reducer
    (`MessagesState`, `create_agent`'s state) it REPLACES the draft in the history; with append=True it gets a
    new id and follows the draft. Its response_metadata is DarwinAlign's (reward, finish_reason, the trace
    summary; answer_source "draft" when the draft won).

    Args:
        align: the search (policy, reward, mutator and parameters); by default `DarwinAlign()`, the embedded model
            and the default reward. Search parameters may also be given here as keywords, instead of an align.
        append: keep the draft and add the refined answer after it, instead of replacing it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    align: DarwinAlign = Field(default_factory=DarwinAlign)
    append: bool = False

    def __init__(self, align: Optional[DarwinAlign] = None, *, append: bool = False, **search: Any) -> None:
        if align is not None and search:
            raise ConfigError(f"give DarwinRefine a DarwinAlign or search parameters ({', '.join(search)}), not "
                              "both: set them on the DarwinAlign")
        super().__init__(align=align if align is not None else DarwinAlign(**search), append=append)

    def invoke(self, input: Mapping[str, Any], config: Optional[RunnableConfig] = None, **kwargs: Any) -> dict:
        draft = final_answer(input)
        if draft is None:
            return {}
        with _named(config):
            return self._call_with_config(lambda state, config: self._update(
                draft, self.align.invoke(state["messages"], config, **kwargs)), input, config)

    async def ainvoke(self, input: Mapping[str, Any], config: Optional[RunnableConfig] = None,
                      **kwargs: Any) -> dict:
        draft = final_answer(input)
        if draft is None:
            return {}

        async def refine(state: Mapping[str, Any], config: RunnableConfig) -> dict:
            return self._update(draft, await self.align.ainvoke(state["messages"], config, **kwargs))

        with _named(config):
            return await self._acall_with_config(refine, input, config)

    def _update(self, draft: AIMessage, refined: AIMessage) -> dict:
        if not self.append and draft.id is not None:
            refined = refined.model_copy(update={"id": draft.id})
        return {"messages": [refined]}


@contextmanager
def _named(config: Optional[RunnableConfig]) -> Iterator[None]:
    """An InputError from the search names this node, as LangGraph calls it, so a graph's author finds it."""
    try:
        yield
    except InputError as exc:
        node = ((config or {}).get("metadata") or {}).get("langgraph_node")
        raise InputError(f"DarwinRefine{f' (graph node {node!r})' if node else ''}: {exc}") from exc


def final_answer(state: Mapping[str, Any]) -> Optional[AIMessage]:
    """The state's last message if it is an answer to refine: an AI message that calls no tools."""
    if not isinstance(state, Mapping) or "messages" not in state:
        raise InputError(f"DarwinRefine reads a graph state with a 'messages' list; got {type(state).__name__}"
                          f"{' with keys ' + ', '.join(map(str, state)) if isinstance(state, Mapping) else ''}")
    messages = state["messages"]
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and not last.tool_calls and last.text.strip():
        return last
    return None
