"""LangChain models as Darwin policies (and as the LLM mutator's model).

The policy contract runs on LangChain's own fake chat model and on a small text-completion LLM written here (LangChain
ships no fake LLM with a max-tokens cap). On a real chat model (ChatDarwin sampling the embedded SmolLM2), and with a
chat model writing the mutations (checked with MiniLM), it runs in tests/integration/langchain/test_policy.py.
"""
from __future__ import annotations

from typing import Any

import pytest
from darwin_chains import Prompt, Sampling, Search
from darwin_chains.testing import KeywordReward
from langchain_core.language_models import FakeListChatModel, FakeListLLM, GenericFakeChatModel
from langchain_core.language_models.llms import LLM
from langchain_core.messages import AIMessage
from langchain_core.tracers.context import collect_runs

from langchain_darwin import DarwinAlign, LangChainPolicy
from langchain_darwin.policy import render

from darwin_chains.testing.contracts import PolicyContract

STORY = ("the cat sat on the mat and then it slept well today while the dog kept watch by the door until dark "
         "when the owl woke up and flew over the quiet field").split()


class StoryLLM(LLM):
    """A completion LLM that continues its prompt's answer with the next words of STORY, `max_tokens` at a time.

    It reads how much of the story the prompt's answer (after "Assistant:") already holds, so a continuation
    really continues. It reports no finish reason, the harder case for the policy.
    """

    max_tokens: int = 256
    seen: list = []

    @property
    def _llm_type(self) -> str:
        return "story"

    def _call(self, prompt: str, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
        self.seen.append(prompt)
        done = len(prompt.rpartition("Assistant:")[2].split())
        return "".join(" " + w for w in STORY[done : done + self.max_tokens])


class TestChatModelPolicy(PolicyContract):
    @pytest.fixture
    def policy(self):
        return LangChainPolicy(FakeListChatModel(responses=["Be brief.", "Leaves fall, softly down."]))


class TestCompletionPolicy(PolicyContract):
    @pytest.fixture
    def policy(self):
        return LangChainPolicy(StoryLLM(seen=[]))


def test_a_chat_model_runs_at_response_granularity_and_says_so():
    policy = LangChainPolicy(FakeListChatModel(responses=["a", "b"]))
    assert not policy.supports_continuation and policy.max_tokens_field is None
    align = DarwinAlign(policy=policy.model, reward=lambda i, r: len(r), mutants=3, keep_top=1, include_trace=True,
                        max_new_tokens=16)
    message = align.invoke("Name a letter.")
    trace = message.response_metadata["darwin"]["trace"]
    assert trace["granularity"] == "response" and trace["cycles"][0]["periods"] == []
    assert any("response granularity" in note for note in trace["notes"])
    assert "".join(c.content for c in align.stream("Name a letter.")) == message.content


def test_the_chat_model_receives_each_mutated_conversation():
    model = GenericFakeChatModel(messages=iter([AIMessage(f"answer {i}") for i in range(10)]))
    policy = LangChainPolicy(model)
    prompts = [Prompt.of([{"role": "system", "content": "ctx"}, {"role": "user", "content": "Why?"}]).with_request(v)
               for v in ("Why? Explain.", "Why? Briefly.")]
    beams = policy.start(prompts, 16)
    with collect_runs() as runs:
        policy.extend(beams, 16, Sampling(), seed=0)
    sent = sorted(run.inputs["prompts"][0] for run in runs.traced_runs)  # the tracer's text form of the messages
    assert sent == ["System: ctx\nHuman: Why? Briefly.", "System: ctx\nHuman: Why? Explain."]
    assert all(b.finished and b.response.startswith("answer") for b in beams)


def test_an_llm_with_a_cap_continues_partial_responses():
    llm = StoryLLM(seen=[])
    policy = LangChainPolicy(llm)
    assert policy.supports_continuation and policy.max_tokens_field == "max_tokens"
    beams = policy.start([Prompt.of("Tell a story.")], 12)
    policy.extend(beams, 5, Sampling(), seed=0)
    assert beams[0].response == " ".join(STORY[:5]) and beams[0].tokens == 5
    policy.extend(beams, 5, Sampling(), seed=0)
    assert beams[0].response == " ".join(STORY[:10]) and not beams[0].finished
    assert llm.seen[-1] == render([{"role": "user", "content": "Tell a story."}]) + " " + " ".join(STORY[:5])


def test_an_llm_ends_a_beam_when_it_has_nothing_more_to_say():
    policy = LangChainPolicy(StoryLLM(seen=[]))
    beams = policy.start([Prompt.of("Tell a story.")], 100)
    while not beams[0].finished:
        policy.extend(beams, 8, Sampling(), seed=0)
    assert beams[0].response == " ".join(STORY)


def test_darwin_replaces_beams_over_a_continuing_llm():
    align = DarwinAlign(policy=StoryLLM(seen=[]), reward=KeywordReward(["owl"]), mutants=3, keep_top=1,
                        replacement_period=4, max_new_tokens=32, include_trace=True)
    trace = align.invoke("Tell a story.").response_metadata["darwin"]["trace"]
    assert trace["granularity"] == "token" and len(trace["cycles"][0]["periods"]) >= 2


def test_an_llm_without_a_cap_answers_whole_responses():
    policy = LangChainPolicy(FakeListLLM(responses=["one whole answer"]))
    assert not policy.supports_continuation
    result = Search(policy, lambda i, r: 1.0, method="best-of-n", mutants=2, max_new_tokens=8).run("Say something.")
    assert result.answer == "one whole answer" and result.trace.granularity == "response"


def test_policy_takes_only_langchain_models():
    with pytest.raises(TypeError):
        LangChainPolicy(object())
    assert LangChainPolicy(FakeListChatModel(responses=["x"]), name="mine").name == "mine"
