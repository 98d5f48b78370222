"""DarwinLLM with components named by spec, resolved on first use: the relevance reward and the LLM mutator load
the packaged MiniLM. The rest of DarwinLLM's own logic is in tests/llama_index/test_llm.py, on fakes."""
from __future__ import annotations

from darwin_chains import LLMMutator, RelevanceReward
from darwin_chains.testing import FakePolicy
from llama_index.llms.darwin import DarwinLLM

from tests.support.searches import FAST


def test_reward_and_mutator_specs_resolve_on_first_use():
    policy = FakePolicy()
    llm = DarwinLLM(policy=policy, reward="relevance", mutator="llm", **FAST)
    assert not llm._components.resolved  # nothing built before it is needed
    trace = llm.complete("say cat").raw.trace
    _, reward, mutator = llm._components.get()
    assert isinstance(reward, RelevanceReward) and isinstance(mutator, LLMMutator) and mutator.policy is policy
    assert (trace.reward, trace.mutator) == ("relevance-minilm", "llm")
