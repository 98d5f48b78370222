"""Structured output: the search keeps only answers that parse and validate against a schema.

Darwin ranks text, so a schema becomes four things here: format instructions where mutation never rewrites
them (the fields in the system message, the object's shape after the question), a constraint on decoding for a
policy that can take one (`Prompt.constrained`: every beam of a local `HFPolicy` is valid JSON by construction), a
hard gate on the reward for one that cannot (`darwin_chains.adapters.GatedReward`: an answer that does not
validate loses to every one that does, and a half-written object that still could stays above one that cannot),
and the parse of the winning answer into the schema's type.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import jsonschema
from darwin_chains import ConfigError, DarwinError
from darwin_chains.adapters import REQUEST_KEY, REQUEST_START_KEY
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.utils.function_calling import convert_to_json_schema
from langchain_core.utils.json import parse_partial_json
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import is_typeddict


#: An opening Markdown fence ("```" or "```json"), which small models often put before a JSON object.
_FENCE = re.compile(r"```(?:json)?\s*", re.I)
#: How long a preamble ("Sure, here is the JSON:") may grow before an answer with no object yet is hopeless.
PREAMBLE = 160
#: How structured output may be asked for in LangChain; all run the same gated search over JSON text.
METHODS = (None, "json_schema", "json_mode", "function_calling")


class StructuredOutputError(DarwinError, OutputParserException):
    """No candidate of the search validated against the schema. `llm_output` holds the best one (the answer the
    search would have returned), and `partial` the search's result message when there was one."""


class Schema:
    """A pydantic model, a TypedDict or a JSON schema dict, as the search needs it: instructions, checks, parse.

    Example:
        >>> class Person(BaseModel):
        ...     name: str
        ...     age: int
        >>> schema = Schema(Person)
        >>> schema.valid('{"name": "Ada", "age": 36}'), schema.viable('Sure: {"name": "Ad'), schema.viable("Ada " * 50)
        (True, True, False)
        >>> schema.parse('Here it is:\\n```json\\n{"name": "Ada", "age": 36}\\n```')
        Person(name='Ada', age=36)
    """

    def __init__(self, schema: Any):
        self.schema = schema
        self._adapter: TypeAdapter | None = None
        if isinstance(schema, type) and (issubclass(schema, BaseModel) or is_typeddict(schema)):
            self._adapter = TypeAdapter(schema)
            self.json_schema = convert_to_json_schema(schema)
        elif isinstance(schema, dict):  # a JSON schema, or an OpenAI-style function/tool holding one
            function = schema.get("function", schema)
            self.json_schema = function.get("parameters", function)
        elif schema is None:  # json_mode without a schema: any JSON object
            self.json_schema = {"type": "object"}
        else:
            raise ConfigError(f"with_structured_output takes a pydantic model, a TypedDict or a JSON schema dict; "
                              f"got {schema!r:.80}")
        name = schema.get("function", schema).get("name") if isinstance(schema, dict) else None
        self.name = name or self.json_schema.get("title") or "a JSON object"
        if self._adapter is None:  # a JSON schema: checked now, so a broken one fails before any search
            kind = jsonschema.validators.validator_for(self.json_schema)
            try:
                kind.check_schema(self.json_schema)
            except jsonschema.SchemaError as exc:
                raise ConfigError(f"with_structured_output got an invalid JSON schema: {exc.message}") from None
            self._validator = kind(self.json_schema)

    @property
    def instructions(self) -> str:
        """The system message's part: the fields in words, each with its type and description.

        Words, not the JSON schema itself: given the schema, SmolLM2 copied it ("properties": ...) in half its
        answers, and its valid rate doubled with this wording (benchmarks/structured/README.md)."""
        properties = self.json_schema.get("properties") or {}
        required = set(self.json_schema.get("required", properties))
        fields = [f"{name} ({_kind(sub)}{'' if name in required else ', optional'})"
                  + (f": {sub['description']}" if sub.get("description") else "") for name, sub in properties.items()]
        return "Answer with a single JSON object" + (f" with these fields: {'; '.join(fields)}." if fields else ".")

    @property
    def example(self) -> str:
        """The user message's part: the object's shape, which even a small model copies (measured on SmolLM2)."""
        return f"Reply in JSON only, like this: {json.dumps(_shape(self.json_schema), ensure_ascii=False)}"

    def instruct(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The conversation with the format instructions where mutation never rewrites them: the fields in the
        leading system message, and the shape after the question in the final human message, outside the span
        marked as the question (the whole original text, unless `mark_question` marked a part)."""
        messages = list(messages)
        if messages and isinstance(messages[0], SystemMessage) and isinstance(messages[0].content, str):
            messages[0] = SystemMessage(f"{messages[0].content}\n\n{self.instructions}")
        else:
            messages.insert(0, SystemMessage(self.instructions))
        last = messages[-1]
        if isinstance(last, HumanMessage) and isinstance(last.content, str) and last.content.strip():
            marks = {REQUEST_KEY: last.content, REQUEST_START_KEY: 0, **last.additional_kwargs}
            messages[-1] = last.model_copy(update={"content": f"{last.content}\n\n{self.example}",
                                                   "additional_kwargs": marks})
        return messages

    # -- the gate's checks ---------------------------------------------------------------------------------------

    def valid(self, text: str) -> bool:
        """The text holds a complete JSON value (fenced, or from its first "{") that validates against the schema."""
        try:
            self.parse(text)
        except OutputParserException:
            return False
        return True

    def viable(self, text: str) -> bool:
        """Could this partial answer still become valid: a short preamble with no object yet ("Sure, here it
        is:"), or the start of an object (LangChain's `parse_partial_json` closes what is open). A complete value
        that fails validation is not."""
        at = _json_start(text)
        if at is None:
            return len(text) <= PREAMBLE
        try:
            json.JSONDecoder().raw_decode(text[at:])
        except json.JSONDecodeError:
            try:
                return isinstance(parse_partial_json(text[at:]), dict)
            except json.JSONDecodeError:
                return False
        return False  # complete but invalid (valid answers never reach this check)

    # -- the parse -----------------------------------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The schema's object for an answer, or OutputParserException saying why it is not one."""
        at = _json_start(text)
        if at is None:
            raise OutputParserException("the answer holds no JSON object", llm_output=text)
        try:
            value, _ = json.JSONDecoder().raw_decode(text[at:])
        except json.JSONDecodeError as exc:
            raise OutputParserException(f"the answer's JSON is not complete: {exc}", llm_output=text) from exc
        if self._adapter is None:
            if problem := jsonschema.exceptions.best_match(self._validator.iter_errors(value)):
                raise OutputParserException(f"the answer does not match the schema: {problem.message}",
                                            llm_output=text)
            return value
        try:
            return self._adapter.validate_python(value)
        except ValidationError as exc:
            raise OutputParserException(f"the answer does not validate as {self.name}: {exc}", llm_output=text) \
                from exc

    def parse_message(self, message: BaseMessage) -> Any:
        """The object in the search's answer; StructuredOutputError, carrying the best text, when there is none."""
        try:
            return self.parse(message.text)
        except OutputParserException as exc:
            reason = message.response_metadata.get("finish_reason")
            hint = (" It was cut off at max_new_tokens: raise it." if reason == "length" else
                    " Give the search more room (max_new_tokens, mutants) or a stronger policy.")
            error = StructuredOutputError(
                f"no answer of the search validates as {self.name}; the best was {message.text[:200]!r} "
                f"({exc.args[0][:200]}).{hint}", llm_output=message.text)
            error.partial = message
            raise error from exc


def _json_start(text: str) -> int | None:
    """Where the JSON begins: after the first fence, else at the first "{"; None when neither is there yet."""
    fence = _FENCE.search(text)
    brace = text.find("{")
    if fence is not None and (brace < 0 or fence.start() < brace):
        return fence.end()
    return brace if brace >= 0 else None


def _kind(schema: dict) -> str:
    """A field's type in words: its JSON type, or its allowed values."""
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_kind(s) for s in schema["anyOf"])
    kind = schema.get("type", "any value")
    return " or ".join(kind) if isinstance(kind, list) else kind


def _shape(schema: dict) -> Any:
    """A skeleton of a value the schema accepts, to show a policy the form: "..." for text, 0 for numbers."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _shape(schema["anyOf"][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {k: _shape(v) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_shape(schema.get("items", {}))]
    return {"integer": 0, "number": 0.0, "boolean": True, "null": None}.get(kind, "...")
