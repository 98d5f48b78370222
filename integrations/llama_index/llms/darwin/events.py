"""The search's progress as LlamaIndex instrumentation events, so traces show what Darwin did inside one LLM call.

Every event the core reports through `Search.run(on_event=...)` becomes one of these and goes through the root
dispatcher's handlers (Arize Phoenix, Langfuse, a custom `BaseEventHandler`), inside the LLM call's span.

    >>> from llama_index.core.instrumentation import get_dispatcher
    >>> from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    >>> class Show(BaseEventHandler):
    ...     def handle(self, event, **kwargs):
    ...         if isinstance(event, DarwinReplacementEvent):
    ...             print(event.replacements)
    >>> get_dispatcher().add_event_handler(Show())
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from llama_index.core.instrumentation.events import BaseEvent


class DarwinEvent(BaseEvent):
    """One step of a search inside an LLM call; each kind below is one of these, named for its kind."""

    @classmethod
    def class_name(cls) -> str:
        return cls.__name__


class DarwinSearchStartedEvent(DarwinEvent):
    """A search began: `beams` decode side by side for `cycles` mutation cycles."""

    method: str
    beams: int
    cycles: int


class DarwinCycleStartedEvent(DarwinEvent):
    """A mutation cycle began from an archived `parent` instruction; `instructions` holds one variant per beam."""

    cycle: int
    parent: str
    instructions: List[str]


class DarwinPeriodScoredEvent(DarwinEvent):
    """After `tokens` tokens every beam was scored against the original instruction; `top` are the kept slots."""

    cycle: int
    period: int
    tokens: int
    rewards: List[float]
    top: List[int]


class DarwinReplacementEvent(DarwinEvent):
    """Losing beams adopted top-k responses: (replaced slot, donor slot) pairs."""

    cycle: int
    period: int
    replacements: List[Tuple[int, int]]


class DarwinArchiveUpdatedEvent(DarwinEvent):
    """The instruction archive after a cycle: winners whose reward beat their parent took its place."""

    cycle: int
    before: List[Dict[str, Any]]
    after: List[Dict[str, Any]]


class DarwinSettledEvent(DarwinEvent):
    """The start of the answer that no later step can change: what streaming has committed so far."""

    text: str


class DarwinSearchFinishedEvent(DarwinEvent):
    """The answer was chosen: its reward, where it came from (a cycle's slot, the seed sample, a draft) and the time."""

    reward: float
    source: Optional[str]
    seconds: float


EVENTS: Dict[str, type[DarwinEvent]] = {
    "search_started": DarwinSearchStartedEvent,
    "cycle_started": DarwinCycleStartedEvent,
    "period_scored": DarwinPeriodScoredEvent,
    "replacement": DarwinReplacementEvent,
    "archive_updated": DarwinArchiveUpdatedEvent,
    "settled": DarwinSettledEvent,
    "search_finished": DarwinSearchFinishedEvent,
}


def to_event(kind: str, data: Dict[str, Any]) -> Optional[DarwinEvent]:
    """The instrumentation event for a core event, or None for a kind this version does not know."""
    cls = EVENTS.get(kind)
    return cls(**data) if cls is not None else None
