"""ChatDarwin beyond the standard suite: drafts, stop sequences, progress events, child runs, per-call parameters,
token counts and finish reasons."""
from __future__ import annotations

import pytest
from darwin_chains import ConfigError, Prompt
from darwin_chains.testing import FakePolicy
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.context import collect_runs

from langchain_darwin import ChatDarwin, DarwinAlign

from tests.support.searches import FAST

QUESTION = "Tell me about the cat"


@pytest.fixture
def chat(fake_policy, cat_reward) -> ChatDarwin:
    return ChatDarwin(policy=fake_policy, reward=cat_reward, seed_sample=False, **FAST)


def test_it_is_a_chat_model_that_answers_like_darwin_align(chat, fake_policy, cat_reward):
    assert isinstance(chat, BaseChatModel)
    align = DarwinAlign(policy=fake_policy, reward=cat_reward, seed_sample=False, **FAST)
    message = chat.invoke(QUESTION)
    assert message.content == align.invoke(QUESTION).content
    assert message.response_metadata["reward"] == pytest.approx(
        cat_reward.score(Prompt.of(QUESTION), [message.content])[0])
    assert message.usage_metadata["output_tokens"] == message.response_metadata["darwin"]["tokens_generated"]


async def test_sync_async_and_streamed_answers_agree(chat):
    answer = chat.invoke(QUESTION).content
    assert (await chat.ainvoke(QUESTION)).content == answer
    chunks = list(chat.stream(QUESTION))
    assert len(chunks) > 2 and "".join(c.content for c in chunks) == answer
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata["output_tokens"] > 0
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    assert "".join([c.content async for c in chat.astream(QUESTION)]) == answer


def test_a_trailing_ai_message_is_a_draft(chat):
    message = chat.invoke([HumanMessage(QUESTION), AIMessage("cat cat cat")])
    assert message.content == "cat cat cat" and message.response_metadata["darwin"]["answer_source"] == "draft"


@pytest.mark.parametrize("where", ["init", "call"])
def test_stop_sequences_end_the_answer_in_invoke_and_stream(fake_policy, cat_reward, where):
    full = ChatDarwin(policy=fake_policy, reward=cat_reward, **FAST).invoke(QUESTION).content
    word = full.split()[3]
    stop = [f" {word}"]
    chat = ChatDarwin(policy=fake_policy, reward=cat_reward, stop=stop if where == "init" else None, **FAST)
    kwargs = {"stop": stop} if where == "call" else {}
    expected = full[: full.index(f" {word}")]
    assert chat.invoke(QUESTION, **kwargs).content == expected
    assert "".join(c.content for c in chat.stream(QUESTION, **kwargs)) == expected


def test_per_call_search_parameters_and_their_langchain_names(chat):
    short = chat.invoke(QUESTION, max_tokens=4)
    assert short.response_metadata["darwin"]["tokens_generated"] <= 3 * 4
    assert chat.bind(mutants=2).invoke(QUESTION).response_metadata["darwin"]["tokens_generated"] <= 2 * 16
    with pytest.raises(ConfigError):
        chat.invoke(QUESTION, keep_top=7)


class Recorder(BaseCallbackHandler):
    """The chat model's run id and every custom event with the run it was sent under."""

    def __init__(self):
        self.events, self.chat_run = [], None

    def on_chat_model_start(self, serialized, messages, *, run_id, **kwargs):
        self.chat_run = run_id

    def on_custom_event(self, name, data, *, run_id, **kwargs):
        self.events.append((name, run_id))


def test_invoke_sends_progress_events_to_the_chat_runs_callbacks(chat):
    recorder = Recorder()
    chat.invoke(QUESTION, {"callbacks": [recorder]})
    names = [name for name, _ in recorder.events]
    assert names[0] == "darwin.search_started" and "darwin.period_scored" in names
    assert {run for _, run in recorder.events} == {recorder.chat_run}


async def test_a_runnable_reward_runs_under_the_chat_model_run(fake_policy):
    reward = RunnableLambda(lambda x: float(x["response"].count("cat")), name="cat_judge")
    chat = ChatDarwin(policy=fake_policy, reward=reward, **FAST)
    for call in (chat.invoke, chat.ainvoke):
        with collect_runs() as collector:
            result = call(QUESTION, {"tags": ["outer"]})
            if hasattr(result, "__await__"):
                await result
        (root,) = collector.traced_runs
        assert root.run_type == "llm" and {r.name for r in root.child_runs} == {"cat_judge"}
        assert all("outer" in r.tags for r in root.child_runs)


def test_in_a_chain(chat):
    chain = ChatPromptTemplate.from_messages([("human", "Tell me about the {animal}")]) | chat | StrOutputParser()
    assert chain.invoke({"animal": "cat"}) == chat.invoke(QUESTION).content


def test_construction_checks(fake_policy):
    with pytest.raises(ConfigError):
        ChatDarwin(policy=fake_policy, mutants=2, keep_top=2)
    with pytest.raises(ValueError, match="api_key"):
        ChatDarwin(api_key="sk-...")
    chat = ChatDarwin(model="embedded", max_tokens=32, timeout=5, stop_sequences=["\n\n"])
    assert (chat.policy, chat.max_new_tokens, chat.time_budget, chat.stop) == ("embedded", 32, 5, ("\n\n",))
    assert chat._llm_type == "darwin" and chat._identifying_params["mutants"] == 5


def test_serialisation_round_trip():
    chat = ChatDarwin(model="embedded", reward="relevance", mutants=3, keep_top=1, stop=["END"])
    back = load(dumpd(chat), valid_namespaces=["langchain_darwin"], allowed_objects=[ChatDarwin])
    assert isinstance(back, ChatDarwin) and back.model_dump() == chat.model_dump()
    assert (back.policy, back.reward) == ("embedded", "relevance")


# -- no silent wrong results --------------------------------------------------------------------------------------


def test_token_counts_of_a_policy_without_tokenizer_are_estimates_with_a_warning(fake_policy, caplog):
    chat = ChatDarwin(policy=fake_policy)
    assert chat.get_num_tokens("twelve chars") == 3
    assert "no tokenizer" in caplog.text and "custom_get_token_ids" in caplog.text
    assert ChatDarwin(policy=fake_policy, custom_get_token_ids=lambda t: [1] * len(t.split())).get_num_tokens(
        "a b c") == 3


@pytest.mark.parametrize("path", ["invoke", "stream"])
def test_include_trace_per_call(chat, path):
    def meta(**kwargs):
        if path == "invoke":
            return chat.invoke(QUESTION, **kwargs).response_metadata
        return list(chat.stream(QUESTION, **kwargs))[-1].response_metadata

    assert "trace" not in meta()["darwin"]
    assert meta(include_trace=True)["darwin"]["trace"]["prompt"]["request"] == QUESTION
    with pytest.raises(ConfigError, match="include_trace"):
        chat.invoke(QUESTION, include_trace="yes")


def test_include_trace_per_call_on_darwin_align(align):
    assert "trace" not in align.invoke(QUESTION).response_metadata["darwin"]
    assert align.invoke(QUESTION, include_trace=True).response_metadata["darwin"]["trace"]["cycles"]


def test_misspelt_arguments_are_refused_at_construction_and_per_call(chat):
    with pytest.raises(ValueError, match="mutant"):
        ChatDarwin(mutant=3)
    for call in (lambda: chat.invoke(QUESTION, mutant=3), lambda: list(chat.stream(QUESTION, mutant=3))):
        with pytest.raises(ConfigError, match="unknown search parameter"):
            call()


@pytest.mark.parametrize("path", ["stream", "astream"])
async def test_a_streamed_call_sends_progress_events_under_its_run(chat, path):
    recorder = Recorder()
    if path == "stream":
        text = "".join(c.content for c in chat.stream(QUESTION, {"callbacks": [recorder]}))
    else:
        text = "".join([c.content async for c in chat.astream(QUESTION, {"callbacks": [recorder]})])
    assert text == chat.invoke(QUESTION).content
    names = [name for name, _ in recorder.events]
    assert names[0] == "darwin.search_started" and "darwin.period_scored" in names
    assert names[-1] == "darwin.search_finished"
    assert {run for _, run in recorder.events} == {recorder.chat_run}


async def test_astream_events_shows_a_chat_models_progress(chat):
    names = [e["name"] async for e in chat.astream_events(QUESTION, version="v2") if e["event"] == "on_custom_event"]
    assert names[0] == "darwin.search_started" and "darwin.replacement" in names


def test_finish_reason_says_whether_the_answer_was_cut_off(fake_policy, cat_reward):
    cut_off = ChatDarwin(policy=fake_policy, reward=cat_reward, **FAST).invoke(QUESTION)
    assert cut_off.response_metadata["finish_reason"] == "length"  # FakePolicy never stops by itself
    ended = ChatDarwin(policy=FakePolicy(stop=0.5), reward=cat_reward, **FAST).invoke(QUESTION)
    assert ended.response_metadata["finish_reason"] == "stop"
    assert list(ChatDarwin(policy=fake_policy, reward=cat_reward, **FAST).stream(QUESTION))[-1] \
        .response_metadata["finish_reason"] == "length"
