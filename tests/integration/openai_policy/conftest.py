"""The OpenAI-compatible policy and judge against real servers: `transformers serve` with the embedded SmolLM2
(`served_smollm2`, shared by this folder), and a fault proxy in front of it.

Everything here is real: the server, the model, the HTTP hops and the `openai` client. The fault proxy is a real
HTTP hop that injects faults before forwarding to the real server.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..servers import free_port, stop, wait_ready
from .proxy import FaultProxy

#: transformers serve samples greedily unless the request's generation config asks for sampling.
SAMPLING = {"generation_config": json.dumps({"do_sample": True})}


@pytest.fixture(scope="package")
def served_smollm2(smollm2_dir, tmp_path_factory) -> str:
    """The base URL (…/v1) of `transformers serve` with SmolLM2 preloaded, on a free loopback port.

    Shared by this folder's tests and stopped after them: the idle server still takes a share of a core."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        pytest.skip("transformers CLI not installed (pip install 'transformers[serving]')")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "OMP_NUM_THREADS": "1"}  # it serves while the tests wait; one thread spins the least when idle
    log = open(tmp_path_factory.mktemp("serve") / "serve.log", "wb")
    process = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", "--port", str(port), str(smollm2_dir)],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", 120, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="package")
def proxy_server(served_smollm2):
    proxy = FaultProxy(served_smollm2)
    yield proxy
    proxy.close()


@pytest.fixture
def proxy(proxy_server):
    """The fault proxy, with no faults scripted and its counters cleared."""
    proxy_server.reset()
    yield proxy_server
    proxy_server.reset()
