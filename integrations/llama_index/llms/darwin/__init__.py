"""Darwin decode-time alignment as a LlamaIndex LLM: `from llama_index.llms.darwin import DarwinLLM`."""
try:
    import llama_index.core  # noqa: F401 - the extra this adapter needs
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("llama_index.llms.darwin needs LlamaIndex: pip install 'darwin-chains[llama-index]'") from exc

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
