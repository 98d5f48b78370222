"""Which part of a prompt is the question: `mark_question` wraps a prompt template so mutation rewrites only that.

Hub-style RAG prompts (`rlm/rag-prompt` and its kind) put the instructions, the question and the retrieved
context in one human message. Darwin mutates the final user message, so without a mark every mutant would be a
paraphrase of all of it, context included. The mark says which span is the question.
"""
from __future__ import annotations

from typing import Any, Optional

from darwin_chains import ConfigError, InputError
from darwin_chains.adapters import REQUEST_KEY, REQUEST_START_KEY
from langchain_core.prompt_values import ChatPromptValueConcrete
from langchain_core.prompts import BasePromptTemplate
from langchain_core.runnables import RunnableConfig, RunnableSerializable


#: Formatted in place of the question to find where it lands; private-use characters never occur in real text.
SENTINEL = "\ue000darwin-question\ue000"


class QuestionMarked(RunnableSerializable[dict, ChatPromptValueConcrete]):
    """A prompt template whose final human message records where its question sits (see `mark_question`)."""

    prompt: BasePromptTemplate
    variable: str = "question"

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if self.variable not in self.prompt.input_variables:
            raise ConfigError(f"the prompt has no input variable {self.variable!r} to mark as the question; its "
                              f"variables are {sorted(self.prompt.input_variables)}")

    @property
    def InputType(self) -> Any:  # noqa: N802 (LangChain's name)
        return self.prompt.InputType

    def get_input_schema(self, config: Optional[RunnableConfig] = None) -> Any:
        return self.prompt.get_input_schema(config)

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return ChatPromptValueConcrete

    def invoke(self, input: dict, config: Optional[RunnableConfig] = None, **kwargs: Any) -> ChatPromptValueConcrete:
        return self._call_with_config(self._format, input, config, run_type="prompt")

    async def ainvoke(self, input: dict, config: Optional[RunnableConfig] = None,
                      **kwargs: Any) -> ChatPromptValueConcrete:
        return self.invoke(input, config)  # formatting is string work: nothing to await

    def _format(self, values: dict) -> ChatPromptValueConcrete:
        question = values.get(self.variable) if isinstance(values, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"the prompt's {self.variable!r} must be a non-empty string, got {question!r:.80}")
        messages = self.prompt.invoke(values).to_messages()
        probe = self.prompt.invoke({**values, self.variable: SENTINEL}).to_messages()[-1]
        at = probe.text.rfind(SENTINEL)
        if probe.type != "human" or at < 0:
            raise InputError(f"the prompt puts {{{self.variable}}} outside its final human message, and Darwin "
                             "mutates only that message; move the question there, or drop mark_question")
        # Earlier copies of the question before the marked one are longer or shorter than the sentinel.
        start = at + probe.text[:at].count(SENTINEL) * (len(question) - len(SENTINEL))
        last = messages[-1]
        marks = {REQUEST_KEY: question, REQUEST_START_KEY: start}
        marked = last.model_copy(update={"additional_kwargs": {**last.additional_kwargs, **marks}})
        return ChatPromptValueConcrete(messages=[*messages[:-1], marked])


def mark_question(prompt: BasePromptTemplate, variable: str = "question") -> QuestionMarked:
    """The prompt, formatting as before, with its `{variable}` marked as the question Darwin may rewrite.

    Example:
        >>> from langchain_core.prompts import ChatPromptTemplate
        >>> rag = ChatPromptTemplate.from_messages([("human", "Use the context to answer the question.\\n"
        ...                                                   "Question: {question}\\nContext: {context}\\nAnswer:")])
        >>> chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} \\
        ...     | mark_question(rag) | DarwinAlign(...)

    The mutants rewrite the question only; the instructions, the context and everything else in the message
    reach every beam as formatted, and rewards still judge answers against the whole original message. The mark
    rides in the final message's `additional_kwargs` ("darwin_request" and "darwin_request_start"), which other
    chat models ignore, so the marked prompt works with any model. A string template's output becomes one human
    message. A question outside the final human message is an InputError when the prompt is formatted.
    """
    return QuestionMarked(prompt=prompt, variable=variable)
