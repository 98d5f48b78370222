"""The conversation a search answers, and the one span of it that mutation may rewrite.

Mutation rewrites the user's *request* only. Everything else (system prompts, retrieved context, earlier turns,
text around the request in the final user message) reaches every beam unchanged.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union

from .errors import InputError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Prompt:
    """An OpenAI-style conversation ending in a user message, plus the request span inside that message.

    `start` is where the request begins in the final message; when not given, it is the request's last
    occurrence. An adapter that knows the exact place (a template variable's position) should give it.

    Example:
        >>> p = Prompt.of("Context: cats purr.\\n\\nQuestion: Why do cats purr?", request="Why do cats purr?")
        >>> p.with_request("Explain why cats purr.").instruction
        'Context: cats purr.\\n\\nQuestion: Explain why cats purr.'
    """

    messages: tuple[Message, ...]
    request: str
    start: int = 0
    json_schema: str | None = None  # JSON text: the answer must be JSON valid against it (`constrained`)

    @classmethod
    def of(cls, value: PromptLike, request: str | None = None, start: int | None = None) -> Prompt:
        """Normalise a string, a message list or a Prompt; check that there is something to answer."""
        if isinstance(value, Prompt):
            return value if request is None else replace(cls._checked(value.messages, request, start),
                                                         json_schema=value.json_schema)
        if isinstance(value, str):
            messages: tuple[Message, ...] = ({"role": "user", "content": value},)
        elif isinstance(value, Sequence):
            messages = tuple(_message(m, i) for i, m in enumerate(value))
        else:
            raise InputError(f"a prompt is a string or a list of messages, got {type(value).__name__}")
        if not messages or messages[-1]["role"] != "user":
            raise InputError("the conversation must end with a user message (the instruction to answer)")
        return cls._checked(messages, messages[-1]["content"] if request is None else request, start)

    @classmethod
    def _checked(cls, messages: tuple[Message, ...], request: str, start: int | None) -> Prompt:
        content = messages[-1]["content"]
        if not content.strip():
            raise InputError("instruction is empty: the final user message has no text to answer")
        if not request.strip():
            raise InputError("the request to mutate is empty")
        start = content.rfind(request) if start is None else start
        if start < 0 or content[start : start + len(request)] != request:
            raise InputError("the request to mutate must be a span of the final user message")
        return cls(messages, request, start)

    @property
    def instruction(self) -> str:
        """The final user message as written: what rewards judge every response against."""
        return self.messages[-1]["content"]

    @property
    def context(self) -> str:
        """Everything in the conversation but the request: system messages, earlier turns, and the final message's
        text before and after the request, in order and separated by blank lines ("" when there is none).

        What a RAG chain retrieved sits here, so a reward can check that an answer is supported by it.
        """
        text = self.instruction
        parts = [m["content"] for m in self.messages[:-1]]
        parts += [text[: self.start], text[self.start + len(self.request) :]]
        return "\n\n".join(p.strip() for p in parts if p.strip())

    def with_request(self, variant: str) -> Prompt:
        """The same conversation with the request span replaced by a variant; all other text stays as it is."""
        text = self.instruction
        content = text[: self.start] + variant + text[self.start + len(self.request) :]
        return replace(self, messages=self.messages[:-1] + ({**self.messages[-1], "content": content},),
                       request=variant)

    def constrained(self, schema: Mapping[str, Any] | str | None) -> Prompt:
        """The same prompt, its answer to be JSON valid against `schema` (a JSON schema, as a dict or JSON text).

        A policy that declares `supports_json_schema` decodes every beam under the schema's grammar, so each
        answer is valid by construction; other policies ignore it, and a reward gate has to choose instead."""
        if schema is None or isinstance(schema, str):
            return replace(self, json_schema=schema)
        return replace(self, json_schema=json.dumps(schema, sort_keys=True, ensure_ascii=False))

    def to_dict(self) -> dict[str, Any]:
        data = {"messages": [dict(m) for m in self.messages], "request": self.request, "start": self.start}
        return data if self.json_schema is None else {**data, "json_schema": json.loads(self.json_schema)}


def _message(m: Any, index: int) -> Message:
    if isinstance(m, Mapping):
        role, content = m.get("role"), m.get("content")
    elif isinstance(m, Sequence) and not isinstance(m, str) and len(m) == 2:
        role, content = m
    else:
        raise InputError(f"message {index} must be a {{'role', 'content'}} mapping or a (role, content) pair")
    if role not in ROLES:
        raise InputError(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise InputError(f"message {index} content must be text, got {type(content).__name__}")
    return {"role": role, "content": content}


PromptLike = Union[str, Sequence[Any], Prompt]


def require_text(kinds: Sequence[str], where: str) -> None:
    """Refuse content parts that are not text (images, audio): a search decodes and scores text only.

    `kinds` are the parts' types, as OpenAI, LangChain and LlamaIndex name them ("text", "image", ...).
    """
    other = [str(k) for k in kinds if k != "text"]
    if other:
        raise InputError(f"Darwin is text-only; {where} holds {', '.join(other)} content")
