"""Policies: a local Hugging Face model (`hf`) or an OpenAI-compatible server (`openai`).

Adapters for other frameworks (a LangChain chat model as a policy) live in `integrations/`. `complete` and
`acomplete` (one whole response from any policy) live in `protocols.py`, beside the protocol they drive.
"""
from __future__ import annotations

from ..protocols import acomplete, complete

__all__ = ["acomplete", "complete"]
