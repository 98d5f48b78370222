"""Darwin decode-time alignment as a LlamaIndex LLM: `from llama_index.llms.darwin import DarwinLLM`."""
from llama_index.llms.darwin.base import DarwinLLM
from llama_index.llms.darwin.events import (
    DarwinArchiveUpdatedEvent,
    DarwinCycleStartedEvent,
    DarwinEvent,
    DarwinPeriodScoredEvent,
    DarwinReplacementEvent,
    DarwinSearchFinishedEvent,
    DarwinSearchStartedEvent,
    DarwinSettledEvent,
)

__all__ = [
    "DarwinArchiveUpdatedEvent",
    "DarwinCycleStartedEvent",
    "DarwinEvent",
    "DarwinLLM",
    "DarwinPeriodScoredEvent",
    "DarwinReplacementEvent",
    "DarwinSearchFinishedEvent",
    "DarwinSearchStartedEvent",
    "DarwinSettledEvent",
]
