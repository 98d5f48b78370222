"""DarwinLLM searches only where it pays: one search per agent run and per template call, counted.

The searches are counted from the instrumentation stream: every call is a `Search`, and its
`DarwinSearchStartedEvent.method` says whether it was a Darwin search ("darwin") or one plain sample ("sample").
The policies are scripted fakes, for speed (FakePolicy) and because the embedded 135M model cannot follow the ReAct
format (ScriptedChatPolicy). The chat-engine turns and the router, which retrieve from the real MiniLM index, are
counted in tests/integration/llama_index/test_calls.py; test_smollm2.py there counts a turn on the real model.
"""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent, ToolCallResult
from llama_index.core.prompts import PromptTemplate
from llama_index.core.prompts.prompt_type import PromptType
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.llms.darwin import DarwinLLM, calls

from tests.support.cookbooks import load_cookbook
from tests.support.llama_index_fixtures import methods
from tests.support.searches import FAST, ScriptedChatPolicy


# -- a person's own calls ---------------------------------------------------------------------------------------


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


# -- LlamaIndex's own steps: its exported templates say what a call is for ----------------------------------------


def test_llama_index_s_step_templates_make_steps_and_nothing_else_does():
    from llama_index.core.memory.chat_summary_memory_buffer import SUMMARIZE_PROMPT
    from llama_index.core.retrievers.fusion_retriever import QUERY_GEN_PROMPT

    def user(text: str) -> ChatMessage:
        return ChatMessage(role="user", content=text)

    assert calls.classify([user(QUERY_GEN_PROMPT.format(num_queries=3, query="bees"))]) == calls.STEP
    assert calls.classify([ChatMessage(role="system", content=SUMMARIZE_PROMPT), user("user: hi")]) == calls.STEP
    assert calls.classify([user("Generate 3 search queries about bees.")]) == calls.ANSWER
    assert calls.classify([user("say cat")], PromptType.KEYWORD_EXTRACT.value) == calls.STEP


def test_an_unverified_llama_index_release_is_named_in_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(calls, "LLAMA_INDEX_VERSION", "0.99.1")
    with caplog.at_level("WARNING", logger=calls.__name__):
        calls._check_version.__wrapped__()
    assert "0.99.1" in caplog.text and "0.14" in caplog.text and "search='everywhere'" in caplog.text


def test_a_step_template_this_release_lacks_is_named_in_a_warning(caplog):
    with caplog.at_level("WARNING", logger=calls.__name__):
        assert calls._patterns((("llama_index.core.chat_engine.condense_plus_context", "GONE_TEMPLATE"),)) == ()
    assert "condense_plus_context.GONE_TEMPLATE" in caplog.text


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


def react_agent(planets, **kwargs) -> tuple[ReActAgent, ScriptedChatPolicy]:
    policy = ScriptedChatPolicy(react_script)
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



def test_a_custom_condense_prompt_given_as_a_step_template_costs_one_search_per_turn(recorder):
    """The chat engine formats the person's own condense prompt before the call, so no prompt type reaches the LLM;
    named in `step_templates`, its call is one plain sample, and without it, a search."""
    from darwin_chains import ConfigError
    from llama_index.core.chat_engine import CondensePlusContextChatEngine
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, TextNode

    class OneDocument(BaseRetriever):
        def _retrieve(self, query_bundle):
            return [NodeWithScore(node=TextNode(text="Cats have whiskers."), score=1.0)]

    condense = PromptTemplate("History:\n{chat_history}\nFollow-up: {question}\nStandalone question:")
    for steps, expected in (([condense], ["darwin", "sample", "darwin"]), ((), ["darwin", "darwin", "darwin"])):
        recorder.events.clear()
        llm = DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), step_templates=steps, **FAST)
        engine = CondensePlusContextChatEngine.from_defaults(OneDocument(), llm=llm, condense_prompt=condense)
        engine.chat("Tell me about cats.")
        engine.chat("And their whiskers?")
        assert methods(recorder) == expected, steps
    with pytest.raises(ConfigError, match="step_templates takes template texts or PromptTemplates"):
        DarwinLLM(policy=FakePolicy(), reward=KeywordReward(), step_templates=[3])
