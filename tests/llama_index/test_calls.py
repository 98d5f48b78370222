"""DarwinLLM searches only where it pays: one search per chat-engine turn and per agent run, counted.

The searches are counted from the instrumentation stream: every call is a `Search`, and its
`DarwinSearchStartedEvent.method` says whether it was a Darwin search ("darwin") or one plain sample ("sample").
The policies are scripted fakes, for speed (FakePolicy) and because the embedded 135M model cannot follow the ReAct
format (ScriptedPolicy); test_smollm2.py counts a chat-engine turn on the real model. The index is the real MiniLM one.
"""
from __future__ import annotations

import json

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.prompts import PromptTemplate
from llama_index.core.prompts.prompt_type import PromptType
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import FunctionTool, QueryEngineTool
from llama_index.llms.darwin import DarwinLLM, DarwinSearchStartedEvent

from .fakes import ScriptedPolicy, SpyPolicy, load_cookbook

FAST = dict(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=16)
FOLLOW_UP = "And how does the dance show the distance?"


def methods(recorder) -> list[str]:
    """The method of every search, in order: "darwin" for a search, "sample" for a plain step."""
    return [e.method for e in recorder.of(DarwinSearchStartedEvent)]


# -- chat engines ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["chat", "stream_chat", "achat", "astream_chat"])
async def test_a_condense_plus_context_turn_costs_one_search(minilm_index, rag_cookbook, recorder, call):
    spy = SpyPolicy(FakePolicy())
    llm = DarwinLLM(policy=spy, reward=KeywordReward(), **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    for question in (rag_cookbook.QUESTION, FOLLOW_UP):
        response = getattr(engine, call)(question)
        response = await response if call.startswith("a") else response
        if "stream" in call:
            text = ("".join([t async for t in response.async_response_gen()]) if call.startswith("a")
                    else "".join(response.response_gen))
            assert text.strip()
    # Turn 1 has no history to condense; turn 2 condenses with one plain sample, then searches the answer.
    assert methods(recorder) == ["darwin", "sample", "darwin"]
    (condense,) = [p for p in spy.prompts if "standalone question" in p.instruction]
    assert FOLLOW_UP in condense.instruction and rag_cookbook.QUESTION in condense.instruction
    assert len(spy.prompts) == 4 + 1 + 4  # three mutants and the seed sample per search, one beam for the step


def test_a_condense_question_turn_costs_one_search(minilm_index, rag_cookbook, recorder):
    """This engine condenses through `predict` with a CUSTOM template, as people's own answer templates are: the
    call site, not the prompt type, says it is a step."""
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_question", llm=llm, similarity_top_k=1)
    engine.chat(rag_cookbook.QUESTION)
    engine.chat(FOLLOW_UP)
    assert methods(recorder) == ["darwin", "sample", "darwin"]


def test_search_everywhere_searches_the_condense_call_too(minilm_index, rag_cookbook, recorder):
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), search="everywhere", **FAST)
    engine = minilm_index.as_chat_engine(chat_mode="condense_plus_context", llm=llm, similarity_top_k=1)
    engine.chat(rag_cookbook.QUESTION)
    engine.chat(FOLLOW_UP)
    assert methods(recorder) == ["darwin", "darwin", "darwin"]


def test_a_persons_own_calls_are_searched(recorder):
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), **FAST)
    llm.complete("say cat")
    assert methods(recorder) == ["darwin"]


# -- template calls: the prompt type says what a call is for ---------------------------------------------------------


@pytest.mark.parametrize("prompt_type, method", [
    (PromptType.QUESTION_ANSWER, "darwin"), (PromptType.REFINE, "darwin"), (PromptType.CUSTOM, "darwin"),
    (PromptType.SINGLE_SELECT, "sample"), (PromptType.SUB_QUESTION, "sample"), (PromptType.KEYWORD_EXTRACT, "sample"),
])
def test_template_calls_follow_their_prompt_type(recorder, prompt_type, method):
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), **FAST)
    assert llm.predict(PromptTemplate("Context: cats.\nQuery: {query_str}", prompt_type=prompt_type), query_str="cat")
    assert methods(recorder) == [method]


def test_a_router_query_engine_routes_with_a_sample_and_searches_the_answer(minilm_index, rag_cookbook, recorder):
    def script(prompt) -> str:
        if "Return the choice" in prompt.instruction or "choices" in prompt.instruction:  # the selector's prompt
            return json.dumps([{"choice": 1, "reason": "it is about bees"}])
        return f"The waggle dance. ({prompt.request})"

    policy = ScriptedPolicy(script)
    llm = DarwinLLM(policy=policy, reward=KeywordReward(["waggle"]), **FAST)
    tools = [QueryEngineTool.from_defaults(minilm_index.as_query_engine(llm=llm, similarity_top_k=1),
                                           description=d) for d in ("Facts about bees.", "Facts about mountains.")]
    engine = RouterQueryEngine(selector=LLMSingleSelector.from_defaults(llm=llm), query_engine_tools=tools, llm=llm)
    response = engine.query(rag_cookbook.QUESTION)
    assert "waggle dance" in str(response)
    assert methods(recorder) == ["sample", "darwin"]
    assert "choice" in policy.asked[0].instruction.lower() and len(policy.asked) == 1 + 4


# -- agents --------------------------------------------------------------------------------------------------------

ACTION = 'Thought: I need the facts.\nAction: lookup_planet\nAction Input: {"name": "Mars"}'
DRAFT = "Thought: I can answer without using any more tools.\nAnswer: Mars has moons."


def react_script(prompt) -> str:
    """A model that follows the ReAct format: look Mars up, then answer; asked plainly, it answers well."""
    if "## Output Format" in prompt.messages[0]["content"]:  # a ReAct step, with the agent's header
        observed = any(m["content"].startswith("Observation:") for m in prompt.messages)
        return DRAFT if observed else ACTION
    return f"Mars has two moons, Phobos and Deimos. ({prompt.request})"


@pytest.fixture(scope="module")
def planets():
    return load_cookbook("llama_index_agent")


def react_agent(planets, **kwargs) -> tuple[ReActAgent, ScriptedPolicy]:
    policy = ScriptedPolicy(react_script)
    llm = DarwinLLM(policy=policy, reward=KeywordReward(["Phobos", "Deimos"]), **{**FAST, **kwargs})
    tool = FunctionTool.from_defaults(fn=planets.lookup_planet)
    return ReActAgent(tools=[tool], llm=llm, system_prompt="You know the planets.", streaming=False), policy


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_react_agent_run_costs_one_search(planets, recorder, streaming):
    agent, policy = react_agent(planets)
    agent.streaming = streaming
    handler = agent.run(user_msg=planets.QUESTION)
    events = [ev async for ev in handler.stream_events()]
    output = await handler
    (tool_result,) = [ev for ev in events if isinstance(ev, ToolCallResult)]
    assert tool_result.tool_name == "lookup_planet" and "Phobos and Deimos" in tool_result.tool_output.content
    # Two reasoning steps (the tool call, then the draft answer) are plain samples; only the answer is searched.
    assert methods(recorder) == ["sample", "sample", "darwin"]
    answer = output.response.content
    assert answer.startswith("Mars has two moons, Phobos and Deimos.") and "Answer:" not in answer
    # The search answered the person's question, with the tool's facts and the agent's system prompt as context
    # and without the ReAct header; the step's own answer joined as a draft, so the result scores at least as well.
    searched = policy.asked[2:]
    assert len(searched) == 4 and planets.QUESTION in [p.instruction for p in searched]  # the seed sample's
    assert all(p.messages[:-1] == searched[0].messages[:-1] for p in searched) and len(searched[0].messages) == 2
    system = searched[0].messages[0]["content"]
    assert system.startswith("You know the planets.") and planets.PLANETS["mars"] in system
    assert "## Output Format" not in system and "Action:" not in system
    trace = output.raw.trace  # the answer's SearchResult
    assert [d.response for d in trace.drafts] == ["Mars has moons."] and output.raw.reward > trace.drafts[0].reward


async def test_search_everywhere_searches_every_agent_step(planets, recorder):
    agent, _ = react_agent(planets, search="everywhere")
    output = await agent.run(user_msg=planets.QUESTION)
    assert methods(recorder) == ["darwin", "darwin"]
    assert output.response.content == "Mars has moons."  # the step's own answer: every beam wrote the same


async def test_function_agent_refuses_darwin_llm_clearly(planets, recorder):
    """No darwin_chains policy calls tools, so DarwinLLM says it is no function-calling model, and FunctionAgent
    stops at its first step, naming what it needs, before any search."""
    llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), **FAST)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=planets.lookup_planet)], llm=llm)
    with pytest.raises(ValueError, match="LLM must be a FunctionCallingLLM"):
        await agent.run(user_msg=planets.QUESTION)
    assert methods(recorder) == []
