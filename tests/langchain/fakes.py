"""A scripted tool-calling chat model: no model that calls tools runs offline here, so this one stands in.

It follows the agent protocol exactly (bind_tools, AIMessage.tool_calls, ToolMessage results); its decisions are
scripted, which is what makes the agent tests' expectations exact.
"""
from __future__ import annotations

from typing import Any, Optional

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr


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
