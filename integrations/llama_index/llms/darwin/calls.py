"""Which of an engine's LLM calls get a search: the answer to the user, not the steps that lead to it.

A LlamaIndex engine makes several LLM calls per user turn: it condenses a follow-up into a standalone question,
routes, extracts keywords, takes agent reasoning steps, and finally writes the answer. A Darwin search costs
several beams and many reward calls, and a reward model judges answers to the user, not a condensed question or a
"Thought: ... Action: ..." line. So DarwinLLM searches the answer and gives every other call one plain sample
(`method="sample"` through the same Search, so traces and budgets stay uniform). `DarwinLLM(search="everywhere")`
searches every call, as before.

LlamaIndex says what a call is for in two ways, and `classify` reads both (checked against llama-index-core 0.14):

- A template call (`predict`, `stream`, `apredict`, `astream`) carries its template's `metadata["prompt_type"]`.
  The answer-writing types (ANSWER_TYPES: question-answer, refine, summary, SQL synthesis, conversation and CUSTOM,
  which the chat engines' context templates and people's own templates use) are searched; the others (selectors,
  keyword and triplet extraction, sub-questions, query transforms, reranking, ...) are steps.
- A direct `chat`/`complete` call carries nothing, so its call site decides. STEP_SITES lists LlamaIndex's own
  functions that call the LLM for an intermediate step (condensing a question, generating retrieval queries,
  summarising memory); AGENT_SITES the ReAct agent's step. Any other caller, a person's code included, is answered
  with a search.

A ReAct step is the final answer only when its output parses as one, which is known only once it is written. So
the step is one plain sample; when the agent's own output parser reads it as the answer, that answer is refined by
one search with the sample as a draft (the result never scores below it), and returned in the format the agent
parses. An agent run therefore costs one search however many tool calls it makes.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any, List, Optional, Tuple

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts.prompt_type import PromptType

from .utils import text_of

log = logging.getLogger(__name__)

#: Where a formatted template's final message carries the template's prompt type (set by DarwinLLM._get_messages).
PROMPT_TYPE_KEY = "darwin_prompt_type"

#: Whether DarwinLLM searches only the answer ("final", the default) or every call ("everywhere").
SEARCH_MODES = ("final", "everywhere")

#: The prompt types of templates that write the answer to the user (as their values, which the marks hold).
ANSWER_TYPES = frozenset(t.value for t in (
    PromptType.QUESTION_ANSWER, PromptType.REFINE, PromptType.SUMMARY, PromptType.SIMPLE_INPUT,
    PromptType.SQL_RESPONSE_SYNTHESIS, PromptType.SQL_RESPONSE_SYNTHESIS_V2, PromptType.CONVERSATION,
    PromptType.CUSTOM,
))

#: LlamaIndex functions whose direct LLM call is an intermediate step, by module.
STEP_SITES = {
    "llama_index.core.chat_engine.condense_plus_context": {"_condense_question", "_acondense_question"},
    "llama_index.core.chat_engine.condense_question": {"_condense_question", "_acondense_question"},
    "llama_index.core.retrievers.fusion_retriever": {"_get_queries", "_aget_queries"},
    "llama_index.core.memory.chat_summary_memory_buffer": {"_summarize_oldest_chat_history"},
}
#: The ReAct agent's step (workflow ReActAgent, alone or inside an AgentWorkflow); its `self` is the agent.
AGENT_SITES = {"llama_index.core.agent.workflow.react_agent": {"_get_response", "_get_streaming_response"}}

#: Frames between the caller and DarwinLLM: this package, LlamaIndex's LLM base class, callbacks and spans.
_PLUMBING = ("llama_index.llms.darwin", "llama_index.core.llms", "llama_index.core.instrumentation",
             "llama_index_instrumentation", "wrapt")

#: User-role messages in a ReAct conversation that the agent wrote, not the person (react_agent.take_step).
_AGENT_WRITTEN = ("Observation:", "Error while parsing the output", "FAILURE: Your previous response was empty")


@dataclass(frozen=True)
class Call:
    """What one LLM call is for: "answer" (searched), "step" (one plain sample) or "agent" (a ReAct step)."""

    kind: str
    agent: Any = None  # the ReActAgent, for an "agent" call

    @property
    def searched(self) -> bool:
        return self.kind == "answer"


ANSWER = Call("answer")
STEP = Call("step")


def classify(prompt_type: Optional[str] = None) -> Call:
    """What the current call is for, from its template's prompt type and from who made it (see the module doc)."""
    frame = _caller()
    module = frame.f_globals.get("__name__", "") if frame else ""
    function = frame.f_code.co_name if frame else ""
    if function in AGENT_SITES.get(module, ()):
        return Call("agent", frame.f_locals.get("self"))
    if function in STEP_SITES.get(module, ()):
        return STEP
    if prompt_type is not None and prompt_type not in ANSWER_TYPES:
        return STEP
    return ANSWER


def _caller() -> Optional[FrameType]:
    """The first frame outside the LLM call's plumbing: whoever called DarwinLLM (an awaited call's frames chain
    through their awaiters, so this holds for `achat` too)."""
    frame = sys._getframe(1)
    while frame is not None and _is_plumbing(frame.f_globals.get("__name__", "")):
        frame = frame.f_back
    return frame


def _is_plumbing(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _PLUMBING)


def final_answer(agent: Any, text: str) -> Optional[Tuple[str, str]]:
    """(thought, answer) when the agent's own output parser reads `text` as its final answer, else None."""
    from llama_index.core.agent.react.types import ResponseReasoningStep

    try:
        step = agent.output_parser.parse(text, is_streaming=False)
    except ValueError:
        return None  # the agent asks the model to fix its format: a step, not the answer
    return (step.thought, step.response) if isinstance(step, ResponseReasoningStep) else None


def answer_messages(agent: Any, messages: List[ChatMessage]) -> Optional[List[ChatMessage]]:
    """The conversation a ReAct agent's final answer replies to, as a plain chat: the agent's system prompt and
    what its tools returned (verbatim) as the system message, then the person's turns up to their request.

    The ReAct header (tool list, output format) and the reasoning lines are left out: a plain answer needs none of
    them, and the reward must judge the answer against the person's request, not against an observation. None when
    no message of the person's is found.
    """
    body = messages[1:] if messages and messages[0].role == MessageRole.SYSTEM else list(messages)
    written = [i for i, m in enumerate(body) if m.role == MessageRole.USER
               and not text_of(m).lstrip().startswith(_AGENT_WRITTEN)]
    if not written:
        log.warning("no user message in the ReAct conversation; the agent's answer is its plain step")
        return None
    request = written[-1]
    observations = [text_of(m).strip() for m in body[request + 1:] if text_of(m).lstrip().startswith("Observation:")]
    system = "\n\n".join(p for p in (getattr(agent, "system_prompt", None) or "", *observations) if p.strip())
    head = [ChatMessage(role=MessageRole.SYSTEM, content=system)] if system else []
    return [*head, *body[: request + 1]]


def react_answer(thought: str, answer: str) -> str:
    """The answer in the ReAct format the agent parses (its `finalize` keeps what follows "Answer:")."""
    return f"Thought: {thought}\nAnswer: {answer}"
