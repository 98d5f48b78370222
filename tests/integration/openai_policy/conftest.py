"""The OpenAI-compatible policy and judge against real servers: `transformers serve` with the embedded SmolLM2
(the session fixture `served_smollm2`, tests/integration/conftest.py), and a fault proxy in front of it.

Everything here is real: the server, the model, the HTTP hops and the `openai` client. The fault proxy is a real
HTTP hop that injects faults before forwarding to the real server.
"""
from __future__ import annotations

import json

import pytest

from .proxy import FaultProxy

#: transformers serve samples greedily unless the request's generation config asks for sampling.
SAMPLING = {"generation_config": json.dumps({"do_sample": True})}


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
