"""Fixtures for the LangChain integration: small searches over a fast fake, and over the embedded SmolLM2.

The embedded model comes from the session fixture `smollm2_policy` (tests/conftest.py), loaded once per run.
"""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward

#: A search small enough for FakePolicy tests: three beams, four "tokens" a period, sixteen in all.
FAST = dict(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=16)
#: A search small enough for the embedded model on two cores.
SMALL = dict(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=24)


@pytest.fixture
def fake_policy() -> FakePolicy:
    return FakePolicy()


@pytest.fixture
def cat_reward() -> KeywordReward:
    """Rewards the word "cat": the fake policy writes it sometimes, so the search has something to find."""
    return KeywordReward(["cat"])


@pytest.fixture
def align(fake_policy, cat_reward):
    from langchain_darwin import DarwinAlign

    return DarwinAlign(policy=fake_policy, reward=cat_reward, seed_sample=False, **FAST)

