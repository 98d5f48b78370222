"""The session's real vLLM servers (tests/support/vllm.py): SmolLM2 as the policy, a small random-weight reward
model on vLLM's pooling runner. Started once as the session begins; each fixture waits until its server answers."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import vllm


@pytest.fixture(scope="session")
def vllm_policy_url() -> str:
    return vllm.wait_for(vllm.session_info(), "policy")


@pytest.fixture(scope="session")
def vllm_reward_url() -> str:
    return vllm.wait_for(vllm.session_info(), "reward")


@pytest.fixture(scope="session")
def vllm_reward_dir(vllm_reward_url) -> Path:
    return Path(vllm.session_info()["reward_dir"])

