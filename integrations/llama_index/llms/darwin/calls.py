"""Which of an engine's LLM calls get a search: the answer to the user, not the steps that lead to it.

A LlamaIndex engine makes several LLM calls per user turn: it condenses a follow-up into a standalone question,
routes, extracts keywords, takes agent reasoning steps, and finally writes the answer. A Darwin search costs
several beams and many reward calls, and a reward model judges answers to the user, not a condensed question or a
"Thought: ... Action: ..." line. So DarwinLLM searches the answer and gives every other call one plain sample
(`method="sample"` through the same Search, so traces and budgets stay uniform). `DarwinLLM(search="everywhere")`
searches every call, as before.

LlamaIndex says what a call is for in two public ways, and `classify` reads both (checked against llama-index-core
0.14, `VERIFIED`; another version is named in a warning at the first call):

- A template call (`predict`, `stream`, `apredict`, `astream`) carries its template's `metadata["prompt_type"]`.
  The answer-writing types (ANSWER_TYPES: question-answer, refine, summary, SQL synthesis, conversation and CUSTOM,
  which the chat engines' context templates and people's own templates use) are searched; the others (selectors,
  keyword and triplet extraction, sub-questions, query transforms, reranking, ...) are steps.
- LlamaIndex writes its own steps from templates it exports as module constants: STEP_TEMPLATES (condensing a
  question, generating retrieval queries, summarising memory) and AGENT_TEMPLATES (the ReAct agent's system
  header). A call whose first or final message is an instance of one (its fixed text in order, anything in its
  fields) is that step. The constants are imported, never copied, so a release that rewords a template is
  followed, and one that moves it is named in a warning. Any other call, a person's code included, is answered with
  a search.

An engine given a template of a person's own for one of its steps (`condense_prompt=` of a chat engine, say)
formats it before the call, so no prompt type reaches the LLM: `DarwinLLM(step_templates=[that template])` makes
its calls steps, matched the same way as LlamaIndex's own.

A ReAct step is the final answer only when its output parses as one, which is known only once it is written. So
the step is one plain sample; when the ReAct output parser reads it as the answer, that answer is refined by one
search with the sample as a draft (the result never scores below it), and returned in the format the agent parses.
An agent run therefore costs one search however many tool calls it makes.
"""
from __future__ import annotations

import functools
import importlib
import logging
import re
import string
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from darwin_chains import ConfigError
from llama_index.core import __version__ as LLAMA_INDEX_VERSION
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.prompts.prompt_type import PromptType

from .utils import text_of

log = logging.getLogger(__name__)

#: Where a formatted template's final message carries the template's prompt type (set by DarwinLLM._get_messages).
PROMPT_TYPE_KEY = "darwin_prompt_type"

#: Whether DarwinLLM searches only the answer ("final", the default) or every call ("everywhere").
SEARCH_MODES = ("final", "everywhere")

#: The llama-index-core releases (major, minor) whose step templates and prompt types were checked.
VERIFIED = ((0, 14),)

#: The prompt types of templates that write the answer to the user (as their values, which the marks hold).
ANSWER_TYPES = frozenset(t.value for t in (
    PromptType.QUESTION_ANSWER, PromptType.REFINE, PromptType.SUMMARY, PromptType.SIMPLE_INPUT,
    PromptType.SQL_RESPONSE_SYNTHESIS, PromptType.SQL_RESPONSE_SYNTHESIS_V2, PromptType.CONVERSATION,
    PromptType.CUSTOM,
))

#: LlamaIndex's templates for its intermediate steps, as (module, constant).
STEP_TEMPLATES = (
    ("llama_index.core.chat_engine.condense_plus_context", "DEFAULT_CONDENSE_PROMPT_TEMPLATE"),
    ("llama_index.core.chat_engine.condense_question", "DEFAULT_TEMPLATE"),
    ("llama_index.core.retrievers.fusion_retriever", "QUERY_GEN_PROMPT"),
    ("llama_index.core.memory.chat_summary_memory_buffer", "SUMMARIZE_PROMPT"),
)
#: The ReAct agent's system headers (workflow ReActAgent, alone or inside an AgentWorkflow); `{context}` holds the
#: agent's system prompt.
AGENT_TEMPLATES = (  # the one with context first: the plain one's fields would match its context too
    ("llama_index.core.agent.react.prompts", "CONTEXT_REACT_CHAT_SYSTEM_HEADER"),
    ("llama_index.core.agent.react.prompts", "REACT_CHAT_SYSTEM_HEADER"),
)

#: User-role messages in a ReAct conversation that the agent wrote, not the person (react_agent.take_step).
_AGENT_WRITTEN = ("Observation:", "Error while parsing the output", "FAILURE: Your previous response was empty")


@dataclass(frozen=True)
class Call:
    """What one LLM call is for: "answer" (searched), "step" (one plain sample) or "agent" (a ReAct step)."""

    kind: str
    context: str = ""  # the ReAct agent's context (its system prompt), for an "agent" call

    @property
    def searched(self) -> bool:
        return self.kind == "answer"


ANSWER = Call("answer")
STEP = Call("step")


def classify(messages: Sequence[ChatMessage], prompt_type: Optional[str] = None,
             steps: Sequence[re.Pattern] = ()) -> Call:
    """What a call is for, from its template's prompt type, from LlamaIndex's own templates and from `steps`, a
    person's own step templates (`step_patterns`); see the module doc."""
    texts = [(m.content or "").strip() for m in ([messages[0], messages[-1]] if len(messages) > 1 else messages)]
    for pattern in _patterns(AGENT_TEMPLATES):
        if texts and (match := pattern.fullmatch(texts[0])):
            return Call("agent", (match.groupdict().get("context") or "").strip())
    if any(pattern.fullmatch(text) for pattern in (*_patterns(STEP_TEMPLATES), *steps) for text in texts):
        return STEP
    if prompt_type is not None and prompt_type not in ANSWER_TYPES:
        return STEP
    return ANSWER


@functools.lru_cache(maxsize=None)
def _patterns(templates: Tuple[Tuple[str, str], ...]) -> Tuple[re.Pattern, ...]:
    """Each template as a pattern that its formatted text fully matches; a template this release does not have is
    named in a warning (that step is then searched), as is a release outside VERIFIED, once."""
    _check_version()
    found = []
    for module, name in templates:
        try:
            template = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            log.warning("llama-index-core %s has no %s.%s; DarwinLLM cannot tell that step from an answer, so it "
                        "searches it. Give the engine a template with a step prompt type, or report this version",
                        LLAMA_INDEX_VERSION, module, name)
            continue
        found.append(_pattern(getattr(template, "template", template)))
    return tuple(found)


def step_patterns(templates: Sequence[object]) -> Tuple[re.Pattern, ...]:
    """Patterns for a person's own step templates: texts, or LlamaIndex PromptTemplates (their text)."""
    texts = [getattr(t, "template", t) for t in templates]
    wrong = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if wrong:
        raise ConfigError(f"step_templates takes template texts or PromptTemplates (the template an engine formats "
                         f"for a step, e.g. its condense_prompt); got {type(wrong[0]).__name__} {wrong[0]!r:.60}")
    return tuple(_pattern(t) for t in texts)


def _pattern(template: str) -> re.Pattern:
    """A pattern for the texts `template.format(...)` writes: its fixed text verbatim, anything in its fields."""
    parts, named = [], set()
    for literal, field, _, _ in string.Formatter().parse(template.strip()):
        parts.append(re.escape(literal))
        if field is not None:
            group = field if field.isidentifier() and field not in named else None
            named.add(field)
            parts.append(f"(?P<{group}>.*?)" if group else ".*?")
    return re.compile("".join(parts), re.DOTALL)


@functools.lru_cache(maxsize=None)
def _check_version() -> None:
    release = tuple(int(p) for p in re.findall(r"\d+", LLAMA_INDEX_VERSION)[:2])
    if release not in VERIFIED:
        log.warning("DarwinLLM's routing (which calls are steps, which the answer) was checked against "
                    "llama-index-core %s, not %s: a step this release writes differently is searched as if it were "
                    "the answer. Check the search counts (DarwinSearchStartedEvent.method), or use "
                    "DarwinLLM(search='everywhere')", " and ".join(f"{a}.{b}" for a, b in VERIFIED),
                    LLAMA_INDEX_VERSION)


def final_answer(text: str) -> Optional[Tuple[str, str]]:
    """(thought, answer) when the ReAct output parser reads `text` as a final answer, else None."""
    from llama_index.core.agent.react.output_parser import ReActOutputParser
    from llama_index.core.agent.react.types import ResponseReasoningStep

    try:
        step = ReActOutputParser().parse(text, is_streaming=False)
    except ValueError:
        return None  # the agent asks the model to fix its format: a step, not the answer
    return (step.thought, step.response) if isinstance(step, ResponseReasoningStep) else None


def answer_messages(context: str, messages: List[ChatMessage]) -> Optional[List[ChatMessage]]:
    """The conversation a ReAct agent's final answer replies to, as a plain chat: the agent's context and
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
    system = "\n\n".join(p for p in (context, *observations) if p.strip())
    head = [ChatMessage(role=MessageRole.SYSTEM, content=system)] if system else []
    return [*head, *body[: request + 1]]


def react_answer(thought: str, answer: str) -> str:
    """The answer in the ReAct format the agent parses (its `finalize` keeps what follows "Answer:")."""
    return f"Thought: {thought}\nAnswer: {answer}"
