"""LangChain integration for darwin-chains: decode-time alignment with Darwin, reward-guided evolutionary search.

- `DarwinAlign`: the search as a Runnable, to put after a prompt anywhere in LCEL (`prompt | DarwinAlign(...)`).
- `ChatDarwin`: the search as a chat model, wherever LangChain expects a `BaseChatModel`.
- `LangChainPolicy`: any LangChain chat model or LLM as the model Darwin decodes with.
- `RunnableReward`: any LangChain Runnable (a judge chain, a classifier) as Darwin's reward.
- `MiniLMEmbeddings`: the packaged all-MiniLM-L6-v2 as LangChain Embeddings, for offline retrieval.

Importing this package loads no model; models load on first use.
"""
from ._convert import DarwinInput, RefineInput
from .chat_models import ChatDarwin
from .embeddings import MiniLMEmbeddings
from .policy import LangChainPolicy
from .reward import RunnableReward
from .runnable import DarwinAlign

__all__ = ["ChatDarwin", "DarwinAlign", "DarwinInput", "LangChainPolicy", "MiniLMEmbeddings", "RefineInput",
           "RunnableReward"]
