"""DarwinAlign's Runnable contract, driven by darwin's fast FakePolicy and real LangChain components.

The same behaviour on the embedded model is in tests/integration/langchain/test_embedded.py.
"""
from __future__ import annotations

import asyncio
import threading

import pytest
from darwin_chains import ConfigError, InputError, Prompt, RewardError
from langchain_core.language_models import FakeListChatModel
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnableLambda
from langchain_core.tracers.context import collect_runs

from langchain_darwin import DarwinAlign

from tests.support.searches import FAST, SlowPolicy

QUESTION = "Tell me about the cat"


def _concat(chunks):
    return "".join(c.content for c in chunks)


# -- construction -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(mutants=0), dict(keep_top=5, mutants=3), dict(method="beam"),
                                 dict(temperature=-1), dict(time_budget=0), dict(mutator="none")])
def test_a_bad_search_parameter_fails_at_construction(bad):
    with pytest.raises(ConfigError):
        DarwinAlign(**bad)


@pytest.mark.parametrize("bad", [dict(policy=3), dict(reward=3), dict(reward="nonsense"), dict(mutator=3.5)])
def test_a_bad_component_fails_at_construction(bad):
    with pytest.raises(ConfigError):
        DarwinAlign(**bad)


def test_a_misspelt_parameter_is_refused_not_ignored():
    with pytest.raises(ValueError, match="mutant"):
        DarwinAlign(mutant=3)


def test_construction_loads_nothing_and_names_the_default_policy(monkeypatch):
    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)
    align = DarwinAlign(reward=lambda instruction, response: 0.0)
    assert not align._components.resolved and align.policy_name == "embedded"
    monkeypatch.setenv("DARWIN_CHAINS_POLICY", "hf:/models/mine")
    assert align.policy_name == "hf:/models/mine"


# -- invoke and the output ----------------------------------------------------------------------------------------


def test_invoke_returns_the_best_answer_with_its_reward_and_cost(align, cat_reward):
    message = align.invoke(QUESTION)
    assert isinstance(message, AIMessage) and message.content
    meta = message.response_metadata
    assert meta["reward"] == pytest.approx(cat_reward.score(Prompt.of(QUESTION), [message.content])[0])
    assert meta["model_name"] == "fake" and meta["darwin"]["method"] == "darwin"
    assert meta["darwin"]["replacements"] > 0 and "trace" not in meta["darwin"]
    usage = message.usage_metadata
    assert usage["output_tokens"] == meta["darwin"]["tokens_generated"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_the_answer_beats_a_plain_sample_under_the_reward(fake_policy, cat_reward):
    darwin, plain = [], []
    for seed in range(6):
        message = DarwinAlign(policy=fake_policy, reward=cat_reward, include_trace=True, seed=seed, **FAST) \
            .invoke(QUESTION)
        trace = message.response_metadata["darwin"]["trace"]
        assert message.response_metadata["reward"] >= trace["seed_sample"]["reward"]  # always, by construction
        darwin.append(message.response_metadata["reward"])
        plain.append(DarwinAlign(policy=fake_policy, reward=cat_reward, method="sample", seed=seed, **FAST)
                     .invoke(QUESTION).response_metadata["reward"])
    assert sum(darwin) > sum(plain)  # on average over seeds, search finds more than one sample does


def test_include_trace_puts_the_full_trace_in_the_metadata(fake_policy, cat_reward):
    message = DarwinAlign(policy=fake_policy, reward=cat_reward, include_trace=True, **FAST).invoke(QUESTION)
    trace = message.response_metadata["darwin"]["trace"]
    assert trace["config"]["mutants"] == 3 and len(trace["cycles"][0]["instructions"]) == 3
    assert trace["prompt"]["request"] == QUESTION


def test_lcel_prompt_to_parser(align):
    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "Tell me about the {animal}")])
    chain = prompt | align | StrOutputParser()
    text = chain.invoke({"animal": "cat"})
    assert isinstance(text, str) and text
    assert text == align.invoke(prompt.invoke({"animal": "cat"})).content


def test_a_message_list_and_a_string_give_the_same_answer(align):
    assert align.invoke([HumanMessage(QUESTION)]).content == align.invoke(QUESTION).content


def test_bad_input_raises_input_error_before_any_search(align, fake_policy):
    with pytest.raises(InputError):
        align.invoke({"query": QUESTION})
    assert fake_policy.calls == []


# -- refinement ---------------------------------------------------------------------------------------------------


def test_a_draft_the_policy_cannot_beat_is_returned(align):
    draft = "cat cat cat cat"
    for value in ({"question": QUESTION, "draft": draft}, [HumanMessage(QUESTION), AIMessage(draft)]):
        message = align.invoke(value)
        assert message.content == draft
        assert message.response_metadata["darwin"]["answer_source"] == "draft"


@pytest.mark.parametrize("seed", range(4))
def test_refinement_never_scores_below_the_draft(fake_policy, cat_reward, seed):
    align = DarwinAlign(policy=fake_policy, reward=cat_reward, seed=seed, **FAST)
    draft = "the mat and then a cat"
    message = align.invoke({"question": QUESTION, "draft": draft})
    (draft_reward,) = cat_reward.score(Prompt.of(QUESTION), [draft])
    assert message.response_metadata["reward"] >= draft_reward


# -- sync, async, batch, stream -------------------------------------------------------------------------------------


async def test_every_path_gives_the_same_answer_for_the_same_seed(align):
    answer = align.invoke(QUESTION).content
    assert (await align.ainvoke(QUESTION)).content == answer
    assert _concat(align.stream(QUESTION)) == answer
    assert _concat([c async for c in align.astream(QUESTION)]) == answer


def test_batch_with_max_concurrency_matches_invoke(align):
    inputs = [QUESTION, "Tell me about the mat", {"question": "Why do cats sleep?"}]
    expected = [align.invoke(x).content for x in inputs]
    assert [m.content for m in align.batch(inputs, config={"max_concurrency": 2})] == expected


async def test_abatch_with_max_concurrency_matches_invoke(align):
    inputs = [QUESTION, "Tell me about the mat", {"question": "Why do cats sleep?"}]
    expected = [align.invoke(x).content for x in inputs]
    assert [m.content for m in await align.abatch(inputs, config={"max_concurrency": 2})] == expected


async def test_concurrent_ainvoke_on_one_instance(align):
    questions = [QUESTION, "Tell me about the mat", "Why do cats sleep?", "Where is the cat?"]
    sequential = [align.invoke(q).content for q in questions]
    together = await asyncio.wait_for(asyncio.gather(*(align.ainvoke(q) for q in questions)), timeout=60)
    assert [m.content for m in together] == sequential


def test_stream_commits_settled_text_before_the_end(align):
    chunks = list(align.stream(QUESTION))
    assert len(chunks) > 2  # with keep_top=1 every period settles more text
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert all(not c.response_metadata and c.usage_metadata is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.chunk_position == "last" and last.response_metadata["reward"] is not None
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.content == align.invoke(QUESTION).content
    assert full.usage_metadata == last.usage_metadata


def test_stream_through_a_chain_yields_text_as_it_settles(align):
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | align | StrOutputParser()
    pieces = list(chain.stream({"question": QUESTION}))
    assert len(pieces) > 2 and "".join(pieces) == align.invoke(QUESTION).content


def test_a_search_with_a_draft_or_the_seed_sample_still_adds_up(fake_policy, cat_reward):
    align = DarwinAlign(policy=fake_policy, reward=cat_reward, **FAST)  # seed sample on
    value = {"question": QUESTION, "draft": "a mat"}
    assert _concat(align.stream(value)) == align.invoke(value).content


def test_closing_a_stream_early_stops_the_search(cat_reward):
    policy = SlowPolicy(delay=0.02)
    align = DarwinAlign(policy=policy, reward=cat_reward, seed_sample=False, mutants=3, keep_top=1,
                        replacement_period=1, max_new_tokens=200)
    before = set(_search_threads())
    stream = align.stream(QUESTION)
    next(stream)
    stream.close()
    at_close = len(policy.calls)
    for worker in set(_search_threads()) - before:
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert len(policy.calls) <= at_close + 1 and len(policy.calls) < 100  # at most the step already under way


def _search_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "darwin-search"]


# -- events, callbacks and config ---------------------------------------------------------------------------------


async def test_astream_events_shows_the_search_progress(align):
    events = [e async for e in align.astream_events(QUESTION, version="v2")]
    start = next(e for e in events if e["event"] == "on_chain_start")
    custom = [e for e in events if e["event"] == "on_custom_event"]
    names = [e["name"] for e in custom]
    assert names[:2] == ["darwin.search_started", "darwin.cycle_started"] and names[-1] == "darwin.search_finished"
    for name in ("darwin.period_scored", "darwin.replacement", "darwin.archive_updated"):
        assert name in names
    assert all(e["run_id"] == start["run_id"] for e in custom)
    period = next(e for e in custom if e["name"] == "darwin.period_scored")["data"]
    assert len(period["rewards"]) == 3 and len(period["top"]) == 1
    streamed = "".join(e["data"]["chunk"].content for e in events if e["event"] == "on_chain_stream")
    assert streamed == align.invoke(QUESTION).content


def test_invoke_sends_progress_to_callbacks(align):
    from langchain_core.callbacks import BaseCallbackHandler

    class Recorder(BaseCallbackHandler):
        def __init__(self):
            self.names = []

        def on_custom_event(self, name, data, *, run_id, **kwargs):
            self.names.append(name)

    for call in (lambda cb: align.invoke(QUESTION, {"callbacks": [cb]}),
                 lambda cb: list(align.stream(QUESTION, {"callbacks": [cb]}))):
        recorder = Recorder()
        call(recorder)
        assert recorder.names[0] == "darwin.search_started" and "darwin.replacement" in recorder.names


def _reward_chain():
    def words(x):
        return float(x["response"].split().count("cat"))

    return RunnableLambda(words, name="cat_counter")


@pytest.mark.parametrize("path", ["invoke", "stream", "ainvoke", "astream"])
async def test_config_reaches_the_reward_and_policy_runs_as_children(path):
    policy = FakeListChatModel(responses=["a cat", "no", "cat cat"])
    align = DarwinAlign(policy=policy, reward=_reward_chain(), mutants=2, keep_top=1, max_new_tokens=8)
    config = {"run_name": "aligned", "tags": ["t1"], "metadata": {"user": "u1"}}
    with collect_runs() as collector:
        if path == "invoke":
            align.invoke(QUESTION, config)
        elif path == "stream":
            list(align.stream(QUESTION, config))
        elif path == "ainvoke":
            await align.ainvoke(QUESTION, config)
        else:
            [c async for c in align.astream(QUESTION, config)]
    (root,) = collector.traced_runs
    assert root.name == "aligned" and "t1" in root.tags and root.extra["metadata"]["user"] == "u1"
    children = {run.name for run in root.child_runs}
    assert "cat_counter" in children and any("Fake" in name or "fake" in name for name in children)
    for child in root.child_runs:
        assert "t1" in child.tags and child.extra["metadata"]["user"] == "u1"


def test_with_config_and_bind(align):
    message = align.bind(max_new_tokens=8).with_config(run_name="x").invoke(QUESTION)
    assert message.response_metadata["darwin"]["tokens_generated"] <= 3 * 8
    with pytest.raises(ConfigError, match="unknown search parameter"):
        align.invoke(QUESTION, mutant=3)


def test_configurable_fields(fake_policy, cat_reward):
    align = DarwinAlign(policy=fake_policy, reward=cat_reward, include_trace=True, **FAST).configurable_fields(
        mutants=ConfigurableField(id="mutants"), max_new_tokens=ConfigurableField(id="length"))
    message = align.invoke(QUESTION, {"configurable": {"mutants": 4, "length": 8}})
    trace = message.response_metadata["darwin"]["trace"]
    assert trace["config"]["mutants"] == 4 and len(trace["cycles"][0]["instructions"]) == 4
    assert trace["config"]["max_new_tokens"] == 8
    with pytest.raises(ConfigError):
        align.invoke(QUESTION, {"configurable": {"mutants": 0}})


def test_configurable_alternatives(fake_policy, cat_reward):
    align = DarwinAlign(policy=fake_policy, reward=cat_reward, **FAST).configurable_alternatives(
        ConfigurableField(id="search"), default_key="darwin",
        best_of_n=DarwinAlign(policy=fake_policy, reward=cat_reward, method="best-of-n", **FAST))
    assert align.invoke(QUESTION).response_metadata["darwin"]["method"] == "darwin"
    chosen = align.invoke(QUESTION, {"configurable": {"search": "best_of_n"}})
    assert chosen.response_metadata["darwin"]["method"] == "best-of-n"
    assert chosen.response_metadata["darwin"]["replacements"] == 0


# -- schemas and serialisation ------------------------------------------------------------------------------------


def test_input_and_output_schemas(align):
    schema = align.get_input_schema()
    for ok in ("hi", [{"type": "human", "content": "hi"}], {"question": "hi", "draft": "ho", "context": "c"}):
        schema.model_validate(ok)
    with pytest.raises(ValueError):
        schema.model_validate({"draft": "no question"})
    assert align.get_output_jsonschema()["title"] == "AIMessage"
    assert "RefineInput" in str(align.get_input_jsonschema())


def test_serialisation_keeps_parameters_and_specs_but_not_objects(align):
    data = dumpd(DarwinAlign(policy="embedded", reward="relevance", mutants=2, keep_top=1, max_new_tokens=9))
    assert data["id"] == ["langchain_darwin", "DarwinAlign"]
    back = load(data, valid_namespaces=["langchain_darwin"], allowed_objects=[DarwinAlign])
    assert (back.policy, back.reward, back.mutants, back.max_new_tokens) == ("embedded", "relevance", 2, 9)
    assert "policy" not in dumpd(align)["kwargs"] and "reward" not in dumpd(align)["kwargs"]


# -- rewards --------------------------------------------------------------------------------------------------------


def test_a_plain_callable_reward(fake_policy):
    align = DarwinAlign(policy=fake_policy, reward=lambda instruction, response: -len(response), **FAST)
    message = align.invoke(QUESTION)
    assert message.response_metadata["reward"] == -len(message.content)


def test_a_runnable_reward_that_returns_no_number_is_named_in_the_error(fake_policy):
    bad = RunnableLambda(lambda x: {"score": 1}, name="judge")
    with pytest.raises(RewardError, match="judge"):
        DarwinAlign(policy=fake_policy, reward=bad, **FAST).invoke(QUESTION)


def test_no_policy_means_the_policy_named_in_configuration(monkeypatch, cat_reward, tmp_path):
    missing = tmp_path / "no-model-here"
    monkeypatch.setenv("DARWIN_CHAINS_POLICY", f"hf:{missing}")
    align = DarwinAlign(reward=cat_reward, **FAST)  # constructing loads nothing, so cannot fail
    with pytest.raises(ConfigError, match="no-model-here"):
        align.invoke("Name a colour.")  # the first call loads $DARWIN_CHAINS_POLICY
