"""Small fakes for fast tests of code built on darwin-chains (like LangChain's fake chat models and DSPy's DummyLM).

They drive the search's own logic in milliseconds. They are never a substitute for a real model when the point
of a test is the model, the tokenizer or a server. The contract test base classes live in
`darwin_chains.testing.contracts` (they need pytest).
"""
from .fakes import FakePolicy, KeywordReward
from .scripted import ScriptedPolicy

__all__ = ["FakePolicy", "KeywordReward", "ScriptedPolicy"]
