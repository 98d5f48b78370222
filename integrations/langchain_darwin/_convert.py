"""Conversions between LangChain's types and darwin_chains', at the edge and nowhere else.

Four choices live here. A trailing `AIMessage` (or a dict's "draft") is a draft answer: it joins the search as a
candidate instead of being sent to the policy. A dict's "context" becomes a system message, because mutation
rewrites only the final user message, so retrieved text reaches every beam unchanged. A final human message may
mark the span that is the question (`REQUEST_KEY`, set by `mark_question`): mutation then rewrites that span only.
Tool calls and their results (an agent's turn) become text in a system message before the question: they are
context the answer must use, and a text policy reads no tool messages.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from darwin_chains import InputError, Prompt, SearchResult
from darwin_chains.adapters import REQUEST_KEY, REQUEST_START_KEY, Delta, Event, Final, require_text
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    AnyMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
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
        if messages[-1].tool_calls:
            raise InputError("the conversation ends with tool calls that have no results yet; run the tools and "
                             "pass their ToolMessages, or drop the call")
        drafts, messages = [text_of(messages[-1])], messages[:-1]
    return Request(prompt_of(fold_tools(messages)), drafts)


def prompt_of(messages: Sequence[BaseMessage]) -> Prompt:
    """The darwin Prompt; a final human message's marked question (`REQUEST_KEY`) is the request to mutate."""
    converted = to_darwin(messages)
    if converted and converted[-1]["role"] != "user":
        order = ", ".join(m.type for m in messages[-6:])
        raise InputError(f"the conversation must end with the question (a human message), but it ends with a "
                         f"{messages[-1].type} message (its last messages: {'..., ' if len(messages) > 6 else ''}"
                         f"{order}); put the question last, or pass context as a system message, which may "
                         "follow the question")
    marks = messages[-1].additional_kwargs if messages else {}
    request = marks.get(REQUEST_KEY)
    if request is None:
        return Prompt.of(converted)
    start = marks.get(REQUEST_START_KEY)
    if not isinstance(request, str) or request not in converted[-1]["content"]:
        raise InputError(f"the marked question {request!r:.80} is not in the final message's text; mark the text "
                         f"as it appears there (additional_kwargs[{REQUEST_KEY!r}]), or remove the mark")
    return Prompt.of(converted, request=request, start=start)


def fold_tools(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Tool calls and results as system messages of text: each result where it came, except that those after
    the last human message (the turn being answered) go just before it, so the conversation ends with the question.
    A system message after the question (a LangGraph retrieve node appending the documents) is context for it and
    goes just before it too. An AI message that only called tools says nothing the results do not."""
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    last = max((i for i, m in enumerate(messages) if _is_user(m)), default=-1)
    out: list[BaseMessage] = []
    turn: list[str] = []  # what the tools said after the question
    late: list[BaseMessage] = []  # system messages after the question: its context
    for i, m in enumerate(messages):
        if isinstance(m, ToolMessage):
            call = calls.get(m.tool_call_id)
            if call is None:
                raise InputError(f"ToolMessage {m.tool_call_id!r} answers no tool call of an earlier AI message")
            text = f"Tool {call['name']}({json.dumps(call['args'], ensure_ascii=False)}) returned: {text_of(m)}"
            if i > last:
                turn.append(text)
            else:
                out.append(SystemMessage(text))
        elif isinstance(m, SystemMessage) and i > last >= 0:
            late.append(m)
        elif isinstance(m, AIMessage) and m.tool_calls:
            if text_of(m).strip() and i > last:
                turn.append(f"The assistant said: {text_of(m)}")
            elif text_of(m).strip():
                out.append(AIMessage(text_of(m)))
        else:
            out.append(m)
    if turn:
        late.append(SystemMessage("\n".join(["Results of the tools called for this question:", *turn])))
    at = len(out) - 1 if last >= 0 else len(out)
    return out[:at] + late + out[at:]


def _is_user(message: BaseMessage) -> bool:
    return (message.role if isinstance(message, ChatMessage) else message.type) in ("human", "user")


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
    return Request(prompt_of(fold_tools(messages)), [draft] if isinstance(draft, str) and draft.strip() else [])


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
        require_text([b.get("type") for b in message.content if isinstance(b, dict)], f"a {message.type} message")
    return message.text


def to_message(result: SearchResult, model_name: str, include_trace: bool = False, content: str | None = None,
               chunk: bool = False) -> AIMessage:
    """The answer as an AIMessage (or the last AIMessageChunk of a stream, holding what was not yet sent).

    response_metadata holds why the answer ended ("finish_reason": "stop" or "length"), the reward against the
    original instruction and, under "darwin", the trace summary with how the search ended; usage_metadata counts
    every token the whole search read and wrote.
    """
    view = result.metadata()
    usage, reward, summary = view.pop("usage"), view.pop("reward"), view.pop("trace")
    reason = view.pop("finish_reason")
    darwin = {**summary, **view}
    if include_trace:
        darwin["trace"] = result.trace.to_dict()
    kwargs = {"content": result.answer if content is None else content,
              "response_metadata": {"model_name": model_name, "finish_reason": reason, "reward": reward,
                                    "darwin": darwin},
              "usage_metadata": UsageMetadata(**usage)}
    return AIMessageChunk(**kwargs, chunk_position="last") if chunk else AIMessage(**kwargs)


def to_chunk(event: Event, model_name: str, include_trace: bool = False) -> Optional[AIMessageChunk]:
    """A stream's chunk for a search event: newly settled text, or the last chunk (the rest, and the metadata)."""
    if isinstance(event, Delta):
        return AIMessageChunk(content=event.text)
    if isinstance(event, Final):
        return to_message(event.result, model_name, include_trace, event.delta, chunk=True)
    return None
