"""LangChain chat models and schemas for the adapter's tests, fast and integration alike.

`ToolCallingChat` is a scripted tool-calling chat model: no model that calls tools runs offline here, so this one
stands in. It follows the agent protocol exactly (bind_tools, AIMessage.tool_calls, ToolMessage results); its
decisions are scripted, which is what makes the agent tests' expectations exact. `Person` is the structured-output
tests' schema. `ChatDarwinCapabilities` is what ChatDarwin declares to LangChain's standard test suites: the unit
one (tests/langchain/test_chat_models_standard.py) and the integration one
(tests/integration/langchain/test_chat_models_standard.py).
"""
from __future__ import annotations

from typing import Any, Optional

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, PrivateAttr

from langchain_darwin import ChatDarwin


class Person(BaseModel):
    """The schema the structured-output tests ask for."""

    name: str
    born: int


#: The search the standard integration suite runs per call; the unit suite's round trip uses it too.
SEARCH = {"mutants": 2, "keep_top": 1, "replacement_period": 4, "max_new_tokens": 8}


class ToolCallingChat(BaseChatModel):
    """With tools bound and no tool result in the conversation yet, it calls `tool` with `args`; otherwise it
    answers with the next of `answers` (round robin, from the first). `seen` records every conversation it was given."""

    tool: str = "get_weather"
    args: dict = {"city": "Paris"}
    answers: list[str] = ["It is sunny."]
    _count: int = PrivateAttr(default=0)
    _seen: list = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-calling-script"

    @property
    def seen(self) -> list[list[BaseMessage]]:
        return self._seen

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        names = [convert_to_openai_tool(t)["function"]["name"] for t in tools]
        if self.tool not in names:
            raise ValueError(f"the script calls {self.tool!r}, which is not among the tools {names}")
        return self.bind(tools=names, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                  tools: Optional[list[str]] = None, **kwargs: Any) -> ChatResult:
        self._seen.append(list(messages))
        if tools and not any(isinstance(m, ToolMessage) for m in messages):
            call = {"name": self.tool, "args": self.args, "id": f"call-{len(self._seen)}"}
            message = AIMessage("", tool_calls=[call])
        else:
            message = AIMessage(self.answers[self._count % len(self.answers)])
            self._count += 1
        return ChatResult(generations=[ChatGeneration(message=message)])


class ChatDarwinCapabilities:
    """What Darwin is and is not: a search over free-text answers of a text policy."""

    @property
    def chat_model_class(self) -> type[ChatDarwin]:
        return ChatDarwin

    @property
    def has_tool_calling(self) -> bool:
        # bind_tools needs a tool-calling LangChain chat model as the policy (tests/langchain/test_agents.py); the
        # suite's policy, the embedded SmolLM2, writes text only, so bind_tools refuses it with a ConfigError.
        return False

    @property
    def has_structured_output(self) -> bool:
        return True  # with_structured_output: a gated search over JSON text (tests/langchain/test_structured.py)

    @property
    def supports_json_mode(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False  # the policies are text models; non-text content is refused with an InputError

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # another policy per call would be another search; use configurable_alternatives instead

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # every token the search read and wrote
