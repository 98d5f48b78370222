"""LangChain's standard chat model integration tests (langchain-tests) for ChatDarwin.

The suite runs against the embedded SmolLM2-135M-Instruct with a small search (two mutants, eight tokens, a
replacement after four), so each call costs about a second: decoding steps dominate, and the suite checks the
interface, not the answer's length. What ChatDarwin declares to the suite is in tests/support/langchain_models.py;
the unit suite is in tests/langchain/test_chat_models_standard.py.
"""
from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests

from tests.support.langchain_models import SEARCH, ChatDarwinCapabilities


class TestChatDarwinIntegration(ChatDarwinCapabilities, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"policy": "embedded", **SEARCH}

    @property
    def has_structured_output(self) -> bool:
        # The suite's structured tests need a model that writes its Joke object reliably, in 8 tokens here; the
        # embedded SmolLM2 does neither. test_structured.py runs structured output on it with room to write.
        return False
