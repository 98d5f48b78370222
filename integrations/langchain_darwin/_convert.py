"""Conversions between LangChain's types and darwin_chains', at the edge and nowhere else.

Two choices live here. A trailing `AIMessage` (or a dict's "draft") is a draft answer: it joins the search as a
candidate instead of being sent to the policy. A dict's "context" becomes a system message, because mutation
rewrites only the final user message, so retrieved text reaches every beam unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from darwin_chains import InputError, Prompt, SearchResult
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.prompt_values import ChatPromptValueConcrete, PromptValue, StringPromptValue
from typing_extensions import Required, TypedDict


class RefineInput(TypedDict, total=False):
    """A question, with an optional draft answer to improve, retrieved context and earlier turns."""

    question: Required[str]
    draft: str
    context: str
    history: list[AnyMessage]


#: What DarwinAlign accepts: text, a prompt template's output, a conversation, or a RefineInput dict.
DarwinInput = Union[str, StringPromptValue, ChatPromptValueConcrete, list[AnyMessage], RefineInput]

_ROLES = {"system": "system", "developer": "system", "human": "user", "user": "user", "ai": "assistant",
          "assistant": "assistant"}
_KEYS = ("question", "draft", "context", "history")


@dataclass
class Request:
    """What one search needs: the conversation to answer and any drafts that join the candidates."""

    prompt: Prompt
    drafts: list[str] = field(default_factory=list)


def to_request(value: Any) -> Request:
    """Normalise any DarwinInput; a conversation that ends with an AI message hands that message in as a draft."""
    if isinstance(value, Mapping):
        return _from_dict(value)
    if isinstance(value, PromptValue):
        messages = value.to_messages()
    elif isinstance(value, str):
        messages = [HumanMessage(value)]
    elif isinstance(value, Sequence):
        messages = convert_to_messages(value)
    else:
        raise InputError(
            f"DarwinAlign takes a string, a PromptValue, a list of messages or a dict with a 'question'; "
            f"got {type(value).__name__}"
        )
    drafts = []
    if messages and isinstance(messages[-1], AIMessage):
        drafts, messages = [text_of(messages[-1])], messages[:-1]
    return Request(Prompt.of(to_darwin(messages)), drafts)


def _from_dict(value: Mapping[str, Any]) -> Request:
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise InputError(f"unknown input key(s) {', '.join(unknown)}; expected 'question' and optionally "
                         "'draft', 'context', 'history'")
    question = value.get("question")
    if not isinstance(question, str):
        raise InputError(f"the input's 'question' must be a string, got {type(question).__name__}")
    messages: list[BaseMessage] = []
    if value.get("context"):
        messages.append(SystemMessage(f"Use this context to answer.\n\n{value['context']}"))
    messages += convert_to_messages(value.get("history") or [])
    messages.append(HumanMessage(question))
    draft = value.get("draft")
    return Request(Prompt.of(to_darwin(messages)), [draft] if isinstance(draft, str) and draft.strip() else [])


def to_darwin(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """OpenAI-style role/content dicts, the form every darwin policy understands."""
    out = []
    for m in messages:
        role = m.role if isinstance(m, ChatMessage) else m.type
        if role not in _ROLES:
            raise InputError(f"a {type(m).__name__} ({role!r}) cannot reach a Darwin policy; "
                             "use system, human and AI messages")
        out.append({"role": _ROLES[role], "content": text_of(m)})
    return out


def to_langchain(messages: Sequence[Mapping[str, str]]) -> list[BaseMessage]:
    """LangChain messages for a darwin conversation (what a LangChain model used as a policy receives)."""
    return convert_to_messages([{"role": m["role"], "content": m["content"]} for m in messages])


def text_of(message: BaseMessage) -> str:
    """A message's text; images, audio and the like cannot reach a text policy, so they are an error."""
    if isinstance(message.content, list):
        other = [b.get("type") for b in message.content if isinstance(b, dict) and b.get("type") != "text"]
        if other:
            raise InputError(f"Darwin is text-only; a {message.type} message holds {', '.join(map(str, other))} "
                             "content")
    return message.text


def metadata(result: SearchResult, model_name: str, include_trace: bool = False) -> dict[str, Any]:
    """The response_metadata of an answer: its reward against the original instruction and how it was found."""
    darwin = result.trace.summary()
    darwin["finished"] = result.finished
    if include_trace:
        darwin["trace"] = result.trace.to_dict()
    return {"model_name": model_name, "reward": result.reward, "darwin": darwin}


def usage(result: SearchResult) -> UsageMetadata:
    """Tokens the whole search spent: every beam, look-ahead, mutator and judge token, not only the answer's."""
    trace = result.trace
    return UsageMetadata(input_tokens=trace.tokens_encoded, output_tokens=trace.tokens_generated,
                         total_tokens=trace.tokens_encoded + trace.tokens_generated)


def to_message(result: SearchResult, model_name: str, include_trace: bool = False, content: str | None = None,
               chunk: bool = False) -> AIMessage:
    """The answer as an AIMessage (or the last AIMessageChunk of a stream, holding what was not yet sent)."""
    kwargs = {"content": result.answer if content is None else content,
              "response_metadata": metadata(result, model_name, include_trace), "usage_metadata": usage(result)}
    return AIMessageChunk(**kwargs, chunk_position="last") if chunk else AIMessage(**kwargs)
