"""LangChain integration for darwin-chains: decode-time alignment with Darwin, reward-guided evolutionary search.

- `DarwinAlign`: the search as a Runnable, to put after a prompt anywhere in LCEL (`prompt | DarwinAlign(...)`).
- `ChatDarwin`: the search as a chat model, wherever LangChain expects a `BaseChatModel` (structured output too).
- `DarwinRefine`: a LangGraph node that refines an agent's final answer; `DarwinRefineMiddleware` does it in
  `create_agent` (imported from `langchain_darwin.middleware`, or here, when `langchain` v1 is installed).
- `mark_question`: marks a prompt template's question, so mutation rewrites it and nothing else in the message.
- `LangChainPolicy`: any LangChain chat model or LLM as the model Darwin decodes with.
- `RunnableReward`: any LangChain Runnable (a judge chain, a classifier) as Darwin's reward.
- `MiniLMEmbeddings`: the packaged all-MiniLM-L6-v2 as LangChain Embeddings, for offline retrieval.

Importing this package loads no model; models load on first use.
"""
from typing import Any

try:
    import langchain_core  # noqa: F401 - the extra this adapter needs
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("langchain_darwin needs LangChain: pip install 'darwin-chains[langchain]'") from exc

from ._convert import DarwinInput, RefineInput
from .chat_models import ChatDarwin
from .embeddings import MiniLMEmbeddings
from .policy import LangChainPolicy
from .prompts import mark_question
from .refine import DarwinRefine
from .reward import RunnableReward
from .runnable import DarwinAlign
from .structured import StructuredOutputError

__all__ = ["ChatDarwin", "DarwinAlign", "DarwinInput", "DarwinRefine", "DarwinRefineMiddleware", "LangChainPolicy",
           "MiniLMEmbeddings", "RefineInput", "RunnableReward", "StructuredOutputError", "mark_question"]


def __getattr__(name: str) -> Any:
    # The middleware needs `langchain` (v1) itself, which nothing else here does: imported when asked for.
    if name == "DarwinRefineMiddleware":
        from .middleware import DarwinRefineMiddleware

        return DarwinRefineMiddleware
    raise AttributeError(f"module 'langchain_darwin' has no attribute {name!r}")
