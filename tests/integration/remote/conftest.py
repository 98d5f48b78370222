"""A real `transformers serve` on loopback, shared by the whole session, serving the embedded SmolLM2.

Everything here is real: the server, the model, the HTTP hops and the `openai` client. The fault proxy is a real
HTTP hop that injects faults before forwarding to the real server.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .proxy import FaultProxy

#: transformers serve samples greedily unless the request's generation config asks for sampling.
SAMPLING = {"generation_config": json.dumps({"do_sample": True})}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, seconds: float, process: subprocess.Popen | None = None) -> None:
    """Poll `url` until it answers 200, at most `seconds`; fail early if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {seconds} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


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


@pytest.fixture(scope="session")
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
