"""Darwin decode-time alignment as a LlamaIndex LLM: `from llama_index.llms.darwin import DarwinLLM`."""
from llama_index.llms.darwin.base import DarwinLLM
from llama_index.llms.darwin.events import (
    DarwinArchiveUpdatedEvent,
    DarwinCycleStartedEvent,
    DarwinPeriodScoredEvent,
    DarwinReplacementEvent,
    DarwinSearchFinishedEvent,
    DarwinSearchStartedEvent,
    DarwinSettledEvent,
)

__all__ = [
    "DarwinArchiveUpdatedEvent",
    "DarwinCycleStartedEvent",
    "DarwinLLM",
    "DarwinPeriodScoredEvent",
    "DarwinReplacementEvent",
    "DarwinSearchFinishedEvent",
    "DarwinSearchStartedEvent",
    "DarwinSettledEvent",
]
