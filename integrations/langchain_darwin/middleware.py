"""DarwinRefineMiddleware: `DarwinRefine` as a `create_agent` middleware (needs `pip install langchain`, v1).

Kept apart from the package's other modules because it imports `langchain.agents`, which the rest does not need.
"""
from __future__ import annotations

from typing import Any, Optional

from darwin_chains.adapters import require

from .refine import DarwinRefine
from .runnable import DarwinAlign

_agents = require("langchain.agents.middleware", package="langchain>=1.0")


class DarwinRefineMiddleware(_agents.AgentMiddleware):
    """Refines the agent's final answer once, after the agent loop ends (`after_agent`), with one Darwin search.

    Example:
        >>> from langchain.agents import create_agent
        >>> agent = create_agent(model, tools, middleware=[DarwinRefineMiddleware(DarwinAlign(reward=..., mutants=3))])
        >>> agent.invoke({"messages": [("human", "What is the weather in Paris?")]})["messages"][-1]

    The draft (the agent's last AI message, which calls no tools) is a candidate, so the answer never scores below
    it; tool calls and results are the search's context. The refined message replaces the draft (same id), or
    follows it with append=True. Arguments are `DarwinRefine`'s.
    """

    def __init__(self, align: Optional[DarwinAlign] = None, *, append: bool = False, **search: Any) -> None:
        super().__init__()
        self.refine = DarwinRefine(align, append=append, **search)

    def after_agent(self, state: Any, runtime: Any) -> Optional[dict[str, Any]]:
        return self.refine.invoke(state) or None

    async def aafter_agent(self, state: Any, runtime: Any) -> Optional[dict[str, Any]]:
        return await self.refine.ainvoke(state) or None
