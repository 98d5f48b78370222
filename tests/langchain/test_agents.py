"""Agents: DarwinRefine as a real LangGraph node, DarwinRefineMiddleware in a real `create_agent`, and ChatDarwin
with tools bound, each over a real @tool and a scripted tool-calling chat model (`ToolCallingChat` in
tests/support/langchain_models.py: no model that calls tools runs offline). The search itself runs on FakePolicy
here, for speed; the cookbook test (tests/integration/langchain/test_cookbook.py) runs the LangGraph refinement on
the embedded model.
"""
from __future__ import annotations

import pytest
from darwin_chains import ConfigError, InputError
from darwin_chains.testing import FakePolicy, KeywordReward
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from langchain_darwin import ChatDarwin, DarwinAlign, DarwinRefine
from langchain_darwin._convert import to_request

from tests.support.langchain_models import ToolCallingChat
from tests.support.searches import FAST

QUESTION = "What is the weather in Paris?"
DRAFT = "It is sunny in Paris."


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: 21 C, sunny, a cat on every roof"


class Searches(BaseCallbackHandler):
    """Counts the searches a run made, by their darwin.search_started events."""

    def __init__(self):
        self.started = 0

    def on_custom_event(self, name, data, **kwargs):
        self.started += name == "darwin.search_started"


def _align() -> DarwinAlign:
    return DarwinAlign(policy=FakePolicy(), reward=KeywordReward(["cat"]), include_trace=True, **FAST)


def _check_refined(messages, searches: Searches) -> AIMessage:
    """One search; the draft was a candidate and the answer scores at least as well; the tool result was context."""
    assert searches.started == 1
    assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    refined = messages[-1]
    trace = refined.response_metadata["darwin"]["trace"]
    (draft,) = trace["drafts"]
    assert draft["response"] == DRAFT and refined.response_metadata["reward"] >= draft["reward"]
    system = [m["content"] for m in trace["prompt"]["messages"] if m["role"] == "system"]
    assert system == ['Results of the tools called for this question:\nTool get_weather({"city": "Paris"}) '
                      'returned: Paris: 21 C, sunny, a cat on every roof']
    assert trace["prompt"]["request"] == QUESTION
    return refined


def test_tool_calls_and_results_become_context_before_the_question():
    call = AIMessage("Let me look.", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}])
    request = to_request([SystemMessage("Be brief."), HumanMessage(QUESTION), call,
                          ToolMessage("21 C", tool_call_id="c1"), AIMessage(DRAFT)])
    assert [m["role"] for m in request.prompt.messages] == ["system", "system", "user"]
    assert request.prompt.messages[1]["content"].splitlines()[1:] == [
        "The assistant said: Let me look.", 'Tool get_weather({"city": "Paris"}) returned: 21 C']
    assert request.drafts == [DRAFT]
    with pytest.raises(InputError, match="tool calls that have no results"):
        to_request([HumanMessage(QUESTION), call])


def test_a_langgraph_graph_refines_the_final_answer_once():
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    model = ToolCallingChat(answers=[DRAFT]).bind_tools([get_weather])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_node("refine", DarwinRefine(_align()))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: "refine"})
    graph.add_edge("tools", "agent")
    graph.add_edge("refine", END)
    app = graph.compile()

    searches = Searches()
    state = app.invoke({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [searches]})
    refined = _check_refined(state["messages"], searches)
    assert refined.id is not None and refined.response_metadata["darwin"]["method"] == "darwin"


async def test_create_agent_middleware_refines_the_final_answer_once():
    from langchain.agents import create_agent

    from langchain_darwin import DarwinRefineMiddleware

    agent = create_agent(ToolCallingChat(answers=[DRAFT]), [get_weather], middleware=[DarwinRefineMiddleware(_align())])
    for call in ("invoke", "ainvoke"):
        searches = Searches()
        state = getattr(agent, call)({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [searches]})
        state = await state if call == "ainvoke" else state
        _check_refined(state["messages"], searches)


async def test_only_a_final_answer_is_refined_and_append_keeps_the_draft():
    refine = DarwinRefine(_align())
    calling = AIMessage("", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "c1"}])
    assert refine.invoke({"messages": [HumanMessage(QUESTION), calling]}) == {}
    assert refine.invoke({"messages": [HumanMessage(QUESTION)]}) == {}
    draft = AIMessage(DRAFT, id="draft-1")
    (replacing,) = refine.invoke({"messages": [HumanMessage(QUESTION), draft]})["messages"]
    (appended,) = (await DarwinRefine(_align(), append=True).ainvoke(
        {"messages": [HumanMessage(QUESTION), draft]}))["messages"]
    assert replacing.id == "draft-1" and appended.id != "draft-1"
    with pytest.raises(InputError, match="'messages' list"):
        refine.invoke({"question": QUESTION})
    with pytest.raises(ConfigError, match="not both"):
        DarwinRefine(_align(), mutants=3)


def test_bind_tools_refuses_a_policy_that_cannot_call_tools_and_names_what_works():
    with pytest.raises(ConfigError, match="LangChain chat model with tool calling") as error:
        ChatDarwin(policy="embedded").bind_tools([get_weather])
    assert "DarwinRefine" in str(error.value) and "'embedded'" in str(error.value)


async def test_chat_darwin_with_a_tool_calling_policy_runs_an_agent():
    """The policy calls the tool (passed through as it is), then answers; the search refines that answer with the
    policy's other answers as beams (response granularity: a chat model cannot continue a prefix)."""
    from langchain.agents import create_agent

    for call in ("invoke", "ainvoke"):
        policy = ToolCallingChat(answers=[DRAFT, "A cat sleeps in the sun.", "Sunny, 21 C.", "cat cat weather"])
        chat = ChatDarwin(policy=policy, reward=KeywordReward(["cat"]), include_trace=True, **FAST)
        agent = create_agent(chat, [get_weather])
        searches = Searches()
        state = getattr(agent, call)({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [searches]})
        state = await state if call == "ainvoke" else state
        messages = state["messages"]
        assert [type(m).__name__ for m in messages] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
        assert messages[1].tool_calls[0]["name"] == "get_weather" and "darwin" not in messages[1].response_metadata
        answer = messages[-1]
        trace = answer.response_metadata["darwin"]["trace"]
        assert searches.started == 1 and trace["granularity"] == "response"
        assert trace["drafts"][0]["response"] == DRAFT
        assert answer.response_metadata["reward"] >= trace["drafts"][0]["reward"]
        assert answer.content in policy.answers and answer.content != DRAFT  # a beam with a cat beat the draft


CONTEXT = "Paris weather today: 21 C, sunny, a cat on every roof."


def test_a_rag_graph_that_appends_the_context_after_the_question_refines_without_error():
    """A retrieve node that adds the documents as a system message after the question: that message is context."""
    from langgraph.graph import END, START, MessagesState, StateGraph

    graph = StateGraph(MessagesState)
    graph.add_node("retrieve", lambda state: {"messages": [SystemMessage(CONTEXT)]})
    graph.add_node("answer", lambda state: {"messages": [AIMessage(DRAFT)]})
    graph.add_node("refine", DarwinRefine(_align()))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "answer")
    graph.add_edge("answer", "refine")
    graph.add_edge("refine", END)
    searches = Searches()
    state = graph.compile().invoke({"messages": [HumanMessage(QUESTION)]}, {"callbacks": [searches]})
    assert searches.started == 1 and [type(m).__name__ for m in state["messages"]] == [
        "HumanMessage", "SystemMessage", "AIMessage"]
    trace = state["messages"][-1].response_metadata["darwin"]["trace"]
    assert [(m["role"], m["content"]) for m in trace["prompt"]["messages"]] == [("system", CONTEXT), ("user", QUESTION)]
    assert trace["drafts"][0]["response"] == DRAFT


def test_a_conversation_that_cannot_end_with_the_question_names_the_node_the_order_and_the_fix():
    from langgraph.graph import END, START, MessagesState, StateGraph

    graph = StateGraph(MessagesState)
    graph.add_node("refine", DarwinRefine(_align()))
    graph.add_edge(START, "refine")
    graph.add_edge("refine", END)
    with pytest.raises(InputError) as error:  # an answer, then another answer: no question to answer last
        graph.compile().invoke({"messages": [HumanMessage(QUESTION), AIMessage("Sunny."), AIMessage(DRAFT)]})
    message = str(error.value)
    assert "DarwinRefine (graph node 'refine')" in message and "human, ai" in message
    assert "put the question last" in message
