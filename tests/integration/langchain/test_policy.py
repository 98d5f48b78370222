"""LangChain models as Darwin policies, on real models: the policy contract on a real chat model (ChatDarwin sampling
the embedded SmolLM2), its usage reports, and a LangChain chat model writing the mutations (the LLM mutator checks
its rewrites with the packaged MiniLM). The rest runs on LangChain's fakes in tests/langchain/test_policy.py.
"""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward
from darwin_chains.testing.contracts import PolicyContract
from langchain_core.language_models import FakeListChatModel

from langchain_darwin import ChatDarwin, DarwinAlign, LangChainPolicy


class TestChatDarwinAsPolicy(PolicyContract):
    """A real chat model: ChatDarwin sampling the embedded SmolLM2 (method="sample" is one plain sample)."""

    @pytest.fixture
    def policy(self, smollm2_policy):
        return LangChainPolicy(ChatDarwin(policy=smollm2_policy, method="sample", max_new_tokens=16))


def test_a_langchain_chat_model_writes_the_mutations():
    rewrites = ("1. Please tell me about the cat.\n2. Describe the cat for me.\n3. What can you tell me about the "
                "cat?")
    align = DarwinAlign(policy=FakePolicy(), reward=KeywordReward(["cat"]), mutator=FakeListChatModel(
        responses=[rewrites]), mutants=3, keep_top=1, replacement_period=4, max_new_tokens=8, include_trace=True)
    trace = align.invoke("Tell me about the cat.").response_metadata["darwin"]["trace"]
    assert trace["mutator"] == "llm" and trace["mutation_fallbacks"] == 0
    assert set(trace["cycles"][0]["instructions"]) == {"Please tell me about the cat.", "Describe the cat for me.",
                                                        "What can you tell me about the cat?"}


def test_a_real_chat_model_as_policy_reports_its_usage(smollm2_policy):
    chat = ChatDarwin(policy=smollm2_policy, method="sample", max_new_tokens=16)
    align = DarwinAlign(policy=chat, mutants=2, keep_top=1, max_new_tokens=16, seed_sample=False)
    message = align.invoke("Name two primary colours.")
    assert message.content and message.response_metadata["darwin"]["granularity"] == "response"
    assert message.response_metadata["model_name"] == "darwin"
    assert 0 < message.usage_metadata["output_tokens"] <= 2 * 16  # the two beams' own counts, capped at 16 each
    assert message.usage_metadata["input_tokens"] > 0  # ChatDarwin reports what it read


async def test_a_real_chat_model_as_policy_async(smollm2_policy):
    chat = ChatDarwin(policy=smollm2_policy, method="sample", max_new_tokens=12)
    align = DarwinAlign(policy=chat, mutants=2, keep_top=1, max_new_tokens=12, seed_sample=False)
    assert (await align.ainvoke("Name a fruit.")).content == align.invoke("Name a fruit.").content
