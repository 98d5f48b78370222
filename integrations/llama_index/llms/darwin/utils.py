"""Conversions between LlamaIndex's types and darwin_chains', kept here so that `base.py` reads as the LLM only.

The one idea worth knowing: which span of the prompt mutation may rewrite. A query engine formats a template
holding both the retrieved context and the user's query into one message. `tag_request` marks the query inside
that message (in its `additional_kwargs`), and `to_prompt` turns the mark into `Prompt.of(..., request=query)`;
the mutator then rewrites the query only, and the context reaches every beam verbatim.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Dict, List, Optional

from darwin_chains import Prompt
from darwin_chains.adapters import REQUEST_KEY, REQUEST_START_KEY, require_text
from llama_index.core.base.llms.types import ChatMessage, MessageRole

log = logging.getLogger(__name__)

#: Formatted in place of the query to find where the query lands; private-use characters never occur in text.
SENTINEL = "\ue000darwin-request\ue000"
#: Template variables that hold the user's request, in the order they are looked for.
REQUEST_VARS = ("query_str", "query", "question")
#: Template variables that hold retrieved text, which must never be rewritten.
CONTEXT_VARS = ("context_str", "context_msg", "context")

ROLES: Dict[MessageRole, str] = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    # Tool results are text the model should read; chat templates of small models know no tool role.
    MessageRole.TOOL: "user",
    MessageRole.FUNCTION: "user",
}


def text_of(message: ChatMessage) -> str:
    """The message's text; other content (images, audio) cannot reach a text policy, so it is an error."""
    require_text([b.block_type for b in message.blocks], f"a {message.role.value} message")
    return message.content or ""


def to_prompt(messages: Sequence[ChatMessage]) -> Prompt:
    """A darwin Prompt whose request is the marked span of the final user message, or the whole message."""
    converted = [{"role": ROLES[m.role], "content": text_of(m)} for m in messages]
    marks = messages[-1].additional_kwargs if messages else {}
    request, start = marks.get(REQUEST_KEY), marks.get(REQUEST_START_KEY)
    if request is not None and request not in converted[-1]["content"]:
        log.warning("the marked request is not part of the final message; the whole message may be rewritten")
        request = start = None
    if start is not None and converted[-1]["content"][start : start + len(request)] != request:
        start = None  # a stale position: fall back to the request's last occurrence
    return Prompt.of(converted, request=request, start=start)


def request_variable(template_vars: Mapping[str, Any]) -> Optional[str]:
    """The template variable that holds the user's request, if any."""
    return next((k for k in REQUEST_VARS if isinstance(template_vars.get(k), str)), None)


def sentinel_start(probe: List[ChatMessage]) -> Optional[int]:
    """Where the sentinel (formatted in place of the request) sits in the final message: where the request does."""
    text = (probe[-1].content or "") if probe else ""
    at = text.rfind(SENTINEL)
    return at if at >= 0 else None


def tag_request(messages: List[ChatMessage], template_vars: Mapping[str, Any], start: Optional[int] = None
                ) -> List[ChatMessage]:
    """Mark the user's request inside the final message of a formatted template, so mutation touches only it.

    `start` is where the request begins (from `sentinel_start`); without it the request's last occurrence is used,
    which is wrong when the same text also appears later (a refine template's existing answer, say).
    """
    key = request_variable(template_vars)
    request = template_vars[key] if key else None
    if not messages or not request or not request.strip():
        return messages
    last = messages[-1]
    if request not in (last.content or ""):
        if any(k in template_vars for k in CONTEXT_VARS):
            log.warning(
                "the template's %s is not in its final message, so DarwinLLM cannot tell it from the retrieved "
                "context there; use a template that ends with a user message holding the query",
                next(k for k in REQUEST_VARS if k in template_vars),
            )
        return messages
    marks = {REQUEST_KEY: request}
    if start is not None and (last.content or "")[start : start + len(request)] == request:
        marks[REQUEST_START_KEY] = start
    marked = last.model_copy(update={"additional_kwargs": {**last.additional_kwargs, **marks}})
    return [*messages[:-1], marked]
