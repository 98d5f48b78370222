"""Fixtures for the LangChain adapter's fast tests: small searches over a fast fake. The tests on the embedded models
are in tests/integration/langchain/; the search sizes (FAST, SMALL) are in tests/support/searches.py.
"""
from __future__ import annotations

import pytest
from darwin_chains.testing import FakePolicy, KeywordReward

from tests.support.searches import FAST


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
