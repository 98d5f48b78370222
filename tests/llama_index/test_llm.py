"""DarwinLLM's own logic, fast: construction, metadata, responses, streaming, async and tracing.

The policy here is darwin_chains.testing.FakePolicy (words, not tokens) so the search's logic runs in
milliseconds. tests/integration/llama_index/ runs the same paths on the embedded SmolLM2 (test_smollm2.py) and
resolves the reward and mutator specs that load MiniLM (test_llm.py).
"""
from __future__ import annotations

import inspect
import threading
from pathlib import Path

import pytest
from darwin_chains import (
    ConfigError,
    InputError,
    RewardError,
    Search,
    SearchResult,
    TemplateMutator,
)
from darwin_chains.testing import FakePolicy, KeywordReward
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
)
from llama_index.llms.darwin import (
    DarwinArchiveUpdatedEvent,
    DarwinCycleStartedEvent,
    DarwinLLM,
    DarwinPeriodScoredEvent,
    DarwinReplacementEvent,
    DarwinSearchFinishedEvent,
    DarwinSearchStartedEvent,
    DarwinSettledEvent,
)
from llama_index.llms.darwin.utils import REQUEST_KEY, to_prompt

from tests.support.loop_watch import LoopWatch
from tests.support.searches import FAST, SlowPolicy, SpyPolicy

PACKAGE = Path(__file__).resolve().parents[2] / "integrations" / "llama_index" / "llms" / "darwin"


def fake_llm(policy=None, reward=None, **kwargs) -> DarwinLLM:
    return DarwinLLM(policy=policy or FakePolicy(), reward=reward or KeywordReward(), **{**FAST, **kwargs})


def user(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.USER, content=text)


# -- packaging, construction, metadata ---------------------------------------------------------------------------


def test_darwin_package_lives_beside_llama_index_core():
    import llama_index
    import llama_index.core
    import llama_index.llms.darwin as darwin

    assert Path(darwin.__file__).resolve().parent == PACKAGE
    portions = [Path(p) for p in llama_index.__path__ if Path(p).is_dir()]
    assert Path(llama_index.core.__file__).resolve().parent.parent in [p.resolve() for p in portions]
    assert PACKAGE.parents[1].resolve() in [p.resolve() for p in portions]
    # Namespace packages: an __init__.py here would hide llama_index.core (or be hidden by it).
    assert not (PACKAGE.parents[1] / "__init__.py").exists() and not (PACKAGE.parent / "__init__.py").exists()


def test_metadata_is_taken_from_the_policy():
    llm = fake_llm(FakePolicy(max_context=1000, name="fake-1k"), max_new_tokens=64)
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (1000, 64, "fake-1k")
    assert meta.is_chat_model and not meta.is_function_calling_model


def test_unknown_context_window_falls_back_to_llama_index_default():
    assert fake_llm(FakePolicy(max_context=None)).metadata.context_window == DEFAULT_CONTEXT_WINDOW


def test_default_policy_is_not_loaded_at_construction_nor_for_tracing():
    llm = DarwinLLM(mutants=3, keep_top=1)
    payload = llm.to_payload()
    assert llm._components.loaded_policy is None
    assert payload["search"]["mutants"] == 3 and payload["policy"] == "default"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mutants=0), "mutants must be a whole number >= 1"),
        (dict(mutants=3, keep_top=3), "keep_top"),
        (dict(method="beam-search"), "method must be one of"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(time_budget=0.0), "time_budget"),
        (dict(mutator="none"), "mutates instructions"),
        (dict(mutator="paraphrase"), "unknown mutator"),
        (dict(reward="helpfulness"), "unknown reward"),
        (dict(policy=object()), "policy must be a darwin_chains Policy"),
        (dict(policy=FakePolicy(max_context=64), max_new_tokens=64), "context window is 64 tokens"),
        (dict(mutant=3), r"unknown search parameter\(s\): mutant \(did you mean mutants\?\)"),
        (dict(search="all"), "search must be one of final, everywhere"),
        (dict(system_promt="Be brief."), r"system_promt \(did you mean system_prompt\?\)"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DarwinLLM(**{**FAST, **kwargs})


def test_a_method_without_mutation_needs_no_mutator():
    llm = fake_llm(mutator="none", method="best-of-n")
    assert llm.complete("say cat").additional_kwargs["trace"]["method"] == "best-of-n"


# -- responses ---------------------------------------------------------------------------------------------------


def test_complete_is_a_thin_wrapper_over_search_run():
    reward = KeywordReward(("cat",))
    response = fake_llm(reward=reward).complete("say cat")
    direct = Search(FakePolicy(), KeywordReward(("cat",)), TemplateMutator(), fake_llm().search_config()).run("say cat")
    assert response.text == direct.answer
    assert isinstance(response.raw, SearchResult) and response.raw.answer == response.text
    assert response.additional_kwargs["reward"] == pytest.approx(direct.reward)
    # FakePolicy(stop=0) never ends an answer by itself: max_new_tokens cut every one off.
    assert (response.additional_kwargs["finish_reason"], response.additional_kwargs["finished"]) == ("length", False)
    trace = response.additional_kwargs["trace"]
    assert trace["method"] == "darwin" and trace["replacements"] > 0 and trace["tokens_generated"] > 0
    # Every score was against the original instruction, never against a mutant.
    assert {instruction for instruction, _ in reward.seen} == {"say cat"}


def test_chat_keeps_the_conversation_and_mutates_only_the_final_request():
    spy = SpyPolicy(FakePolicy())
    history = [
        ChatMessage(role=MessageRole.SYSTEM, content="Talk about cats."),
        user("hello"),
        ChatMessage(role=MessageRole.ASSISTANT, content="hi there"),
    ]
    response = fake_llm(spy).chat([*history, user("say cat")])
    assert response.message.role == MessageRole.ASSISTANT
    assert response.message.content == response.raw.answer and response.additional_kwargs["reward"] >= 0
    expected = ({"role": "system", "content": "Talk about cats."}, {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi there"})
    assert spy.prompts and all(p.messages[:-1] == expected for p in spy.prompts)
    assert all(p.instruction.count("say cat") == 1 for p in spy.prompts)
    assert len({p.instruction for p in spy.prompts}) > 1  # the mutants really differ


def test_system_prompt_reaches_completions():
    spy = SpyPolicy(FakePolicy())
    fake_llm(spy, system_prompt="Answer about cats.").complete("say cat")
    assert all(p.messages[0] == {"role": "system", "content": "Answer about cats."} for p in spy.prompts)


def test_plain_callables_are_reward_and_mutator():
    asked = []

    def brevity(instruction: str, response: str) -> float:
        asked.append(instruction)
        return -len(response)

    spy = SpyPolicy(FakePolicy(stop=0.15))
    llm = fake_llm(spy, reward=brevity, mutator=lambda text, n: [f"{text} (v{i})" for i in range(n)])
    response = llm.complete("say cat")
    assert response.additional_kwargs["reward"] == -len(response.text)
    assert set(asked) == {"say cat"}
    assert {"say cat (v0)", "say cat (v1)", "say cat (v2)"} <= {p.request for p in spy.prompts}


def test_per_call_overrides_and_drafts():
    llm = fake_llm()
    assert llm.complete("say cat", method="sample").additional_kwargs["trace"]["method"] == "sample"
    assert llm.method == "darwin"
    response = llm.chat([user("say cat")], drafts=["cat cat cat"])  # KeywordReward's best possible answer
    assert response.message.content == "cat cat cat"
    assert response.additional_kwargs["trace"]["answer_source"] == "draft"
    with pytest.raises(ConfigError, match="keep_top"):
        llm.complete("say cat", keep_top=3)


def test_an_answer_that_ends_by_itself_says_stop():
    response = fake_llm(FakePolicy(stop=0.3)).complete("say cat")
    assert (response.additional_kwargs["finish_reason"], response.additional_kwargs["finished"]) == ("stop", True)
    assert response.raw.finish_reason == "stop"


@pytest.mark.parametrize("call", ["complete", "chat", "acomplete", "achat", "stream_complete", "astream_chat"])
@pytest.mark.parametrize("kwargs, match", [
    (dict(mutant=3), r"mutant \(did you mean mutants\?\)"),
    (dict(max_tokens=-1), "max_new_tokens must be a whole number >= 1"),
    (dict(tools=["lookup"]), r"unknown search parameter\(s\): tools"),
])
async def test_every_call_refuses_unknown_or_bad_arguments(call, kwargs, match):
    llm = fake_llm()
    arg = [user("say cat")] if "chat" in call else "say cat"
    with pytest.raises(ConfigError, match=match):
        result = getattr(llm, call)(arg, **kwargs)  # a stream fails here too, before it is read
        await result if inspect.iscoroutine(result) else None


def test_llama_indexs_own_call_arguments_pass_by():
    llm = fake_llm()
    assert llm.complete("say cat", formatted=True).text
    assert llm.chat([user("say cat")], formatted=True).message.content  # as CustomLLM-style callers pass it


def test_message_conversion():
    prompt = to_prompt([
        ChatMessage(role=MessageRole.DEVELOPER, content="Be brief."),
        ChatMessage(role=MessageRole.CHATBOT, content="Hello."),
        ChatMessage(role=MessageRole.TOOL, content="lookup: 42"),
        ChatMessage(role=MessageRole.USER, content="Context: 42.\nQuestion: what is it?",
                    additional_kwargs={REQUEST_KEY: "what is it?"}),
    ])
    assert [m["role"] for m in prompt.messages] == ["system", "assistant", "user", "user"]
    assert prompt.request == "what is it?"
    assert prompt.with_request("explain it").instruction == "Context: 42.\nQuestion: explain it"
    # A mark that is not in the message protects nothing: the whole message is the request.
    stale = to_prompt([ChatMessage(role=MessageRole.USER, content="abc", additional_kwargs={REQUEST_KEY: "xyz"})])
    assert stale.request == "abc"
    with pytest.raises(InputError, match="text-only"):
        blocks = [TextBlock(text="see"), ImageBlock(url="http://x/y.png")]
        to_prompt([ChatMessage(role=MessageRole.USER, blocks=blocks)])
    with pytest.raises(InputError, match="end with a user message"):
        fake_llm().chat([user("hi"), ChatMessage(role=MessageRole.ASSISTANT, content="hello")])


# -- streaming ---------------------------------------------------------------------------------------------------


def _check_stream(texts, deltas, final_text, last):
    assert len(deltas) > 1, "the settled text should stream before the search ends"
    assert "".join(deltas) == final_text == texts[-1]
    assert all(final_text.startswith(t) for t in texts)  # what was sent is never taken back
    assert last["reward"] is not None and last["trace"]["method"] == "darwin"


def test_stream_complete_commits_settled_text_then_the_rest():
    llm = fake_llm(seed_sample=False, max_new_tokens=24)
    chunks = list(llm.stream_complete("say cat"))
    assert all(not c.additional_kwargs for c in chunks[:-1])
    _check_stream([c.text for c in chunks], [c.delta for c in chunks], llm.complete("say cat").text,
                  chunks[-1].additional_kwargs)
    assert chunks[-1].raw.answer == chunks[-1].text


def test_stream_chat_matches_chat():
    llm = fake_llm(seed_sample=False, max_new_tokens=24)
    chunks = list(llm.stream_chat([user("say cat")]))
    _check_stream([c.message.content for c in chunks], [c.delta for c in chunks],
                  llm.chat([user("say cat")]).message.content, chunks[-1].additional_kwargs)


def test_stream_raises_the_search_error():
    llm = fake_llm(reward=lambda instruction, response: 1 / 0)
    with pytest.raises(RewardError, match="ZeroDivisionError"):
        list(llm.stream_chat([user("say cat")]))


def test_abandoned_stream_stops_the_search():
    policy = SlowPolicy(delay=0.02)
    stream = fake_llm(policy, seed_sample=False, max_new_tokens=400).stream_complete("say cat")
    next(stream)  # the first settled text: one or two periods in
    stream.close()
    for worker in [t for t in threading.enumerate() if t.name == "darwin-search"]:
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert len(policy.calls) < 20  # a full search would extend 100 times


# -- async -------------------------------------------------------------------------------------------------------


async def test_async_forms_give_the_sync_answers():
    llm = fake_llm(seed_sample=False, max_new_tokens=24)
    assert (await llm.acomplete("say cat")).text == llm.complete("say cat").text
    chat = await llm.achat([user("say cat")])
    assert chat.message.content == llm.chat([user("say cat")]).message.content
    chunks = [c async for c in await llm.astream_complete("say cat")]
    _check_stream([c.text for c in chunks], [c.delta for c in chunks], chat.message.content,
                  chunks[-1].additional_kwargs)
    chunks = [c async for c in await llm.astream_chat([user("say cat")])]
    _check_stream([c.message.content for c in chunks], [c.delta for c in chunks], chat.message.content,
                  chunks[-1].additional_kwargs)


async def test_async_stream_raises_the_search_error():
    llm = fake_llm(reward=lambda instruction, response: 1 / 0)
    with pytest.raises(RewardError):
        [c async for c in await llm.astream_chat([user("say cat")])]


@pytest.mark.parametrize("streaming", [False, True])
async def test_async_calls_leave_the_event_loop_free(streaming):
    """Every extend waits for a tick of the loop before it runs: one run on the loop would wait in vain."""
    watch = LoopWatch()
    policy = FakePolicy()
    policy.extend = watch.gated(policy.extend)
    llm = fake_llm(policy, max_new_tokens=24)

    async def consume():
        if streaming:
            return [c async for c in await llm.astream_chat([user("say cat")])]
        return await llm.acomplete("say cat")

    async with watch.ticking():
        await consume()
    assert watch.blocked == 0, f"{watch.blocked} of {len(policy.calls)} extends ran while the loop was held"
    assert watch.free == len(policy.calls) >= 6  # six periods


# -- tracing -----------------------------------------------------------------------------------------------------

SEARCH_EVENTS = (DarwinSearchStartedEvent, DarwinCycleStartedEvent, DarwinPeriodScoredEvent, DarwinReplacementEvent,
                 DarwinArchiveUpdatedEvent, DarwinSettledEvent, DarwinSearchFinishedEvent)


def test_search_events_reach_a_root_handler_inside_the_call_span(recorder):
    response = fake_llm(seed_sample=False).chat([user("say cat")])
    darwin = recorder.of(*SEARCH_EVENTS)
    kinds = [type(e) for e in darwin]
    assert kinds[0] is DarwinSearchStartedEvent and kinds[-1] is DarwinSearchFinishedEvent
    steps = {DarwinCycleStartedEvent, DarwinPeriodScoredEvent, DarwinReplacementEvent, DarwinArchiveUpdatedEvent}
    assert steps <= set(kinds)
    (start,), (end,) = recorder.of(LLMChatStartEvent), recorder.of(LLMChatEndEvent)
    assert start.span_id and all(e.span_id == start.span_id for e in darwin)
    assert darwin[-1].reward == end.response.additional_kwargs["reward"] == response.additional_kwargs["reward"]
    cycle = recorder.of(DarwinCycleStartedEvent)[0]
    assert cycle.parent == "say cat" and len(cycle.instructions) == 3
    scored = recorder.of(DarwinPeriodScoredEvent)[0]
    assert len(scored.rewards) == 3 and len(scored.top) == 1


def test_streamed_search_events_keep_the_call_span(recorder):
    chunks = list(fake_llm(seed_sample=False).stream_chat([user("say cat")]))
    (start,) = recorder.of(LLMChatStartEvent)
    assert len(recorder.of(LLMChatInProgressEvent)) == len(chunks)
    settled = recorder.of(DarwinSettledEvent)
    assert settled and [e.text for e in settled] == [c.message.content for c in chunks[:-1]]
    assert all(e.span_id == start.span_id for e in recorder.of(*SEARCH_EVENTS))


def test_legacy_callback_manager_sees_the_llm_call():
    debug = LlamaDebugHandler()
    llm = fake_llm(callback_manager=CallbackManager([debug]))
    response = llm.complete("say cat")
    ((start, end),) = debug.get_event_pairs(CBEventType.LLM)
    assert end.payload["completion"].text == response.text


def test_completion_events_carry_the_search_result(recorder):
    response = fake_llm().complete("say cat")
    (end,) = recorder.of(LLMCompletionEndEvent)
    assert end.response.additional_kwargs["trace"]["answer_source"] == response.raw.trace.answer_source


def test_a_template_whose_query_is_not_in_the_final_message_is_reported(caplog):
    from llama_index.core.prompts import ChatPromptTemplate

    template = ChatPromptTemplate.from_messages([("system", "Question: {query_str}"), ("user", "Context: {context_str}")])
    spy = SpyPolicy(FakePolicy())
    fake_llm(spy).predict(template, query_str="say cat", context_str="cats purr")
    assert "cannot tell it from the retrieved context" in caplog.text
    assert {p.request for p in spy.prompts} >= {"Context: cats purr"}  # the whole final message was the request


def test_the_query_is_found_where_the_template_puts_it_even_when_repeated_later():
    """A refine template shows the query, then an existing answer that may repeat it: only the query mutates."""
    from llama_index.core.prompts import PromptTemplate

    from llama_index.llms.darwin import DarwinLLM
    from llama_index.llms.darwin.utils import to_prompt

    template = PromptTemplate("Query: {query_str}\nExisting answer: {existing_answer}\nRefine the answer.")
    llm = DarwinLLM(policy=FakePolicy(), reward=lambda i, r: 0.0)
    messages = llm._get_messages(template, query_str="what is Tom?", existing_answer="what is Tom? Tom is a cat.")
    prompt = to_prompt(messages)
    mutated = prompt.with_request("Describe Tom.").instruction
    assert mutated == "Query: Describe Tom.\nExisting answer: what is Tom? Tom is a cat.\nRefine the answer."
