"""What a framework adapter needs from the core, in one public module (LangChain's and LlamaIndex's use only this
and the top-level package; tests/unit/test_layout.py checks it).

An adapter converts its framework's inputs, calls the core, and converts the result. For that it needs the knob
fields (`knobs`, `pydantic_fields`) and their checks (`check_names`, `resolve`, `search_config`, `check_components`),
the components resolved on first use (`Components`), the stream's events (`Progress`, `Delta`, `Final`), and the
message marks that say which span of a message is the request to mutate (`REQUEST_KEY`, `REQUEST_START_KEY`).

    >>> from darwin_chains.adapters import search_config
    >>> search_config({"mutants": 3}, max_new_tokens=64).max_new_tokens
    64
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import defaults
from .config import SearchConfig, check_names, knobs, pydantic_fields, resolve
from .embedded.embedder import UsesEmbedder
from .errors import require
from .prompt import require_text
from .protocols import Mutator, Policy, Reward, as_mutator, as_reward, component_name
from .rewards.gate import GatedReward
from .search.components import Components
from .search.stops import cut
from .search.stream import Delta, Event, Final, Progress

#: Where a message carries the span of its text that is the request (mutation rewrites that span only), and where
#: the span starts in the text. The same keys on every face, so a marked message means the same everywhere.
REQUEST_KEY = "darwin_request"
REQUEST_START_KEY = "darwin_request_start"


def search_config(values: Mapping[str, Any], **overrides: Any) -> SearchConfig:
    """The search that a face's knob fields (`values`, by name) describe, with per-call overrides by name or alias;
    a value that cannot work raises ConfigError."""
    own = {knob.name: values[knob.name] for knob in knobs() if knob.name in values}
    return SearchConfig().replace(**{**own, **resolve(overrides)})


def check_components(config: SearchConfig, reward: Any, mutator: Any) -> None:
    """Construction checks every face makes: a reward or mutator given by spec must name one, and the mutator must
    suit the search (`SearchConfig.check_mutator`). Raises ConfigError naming the fix."""
    if isinstance(reward, str):
        defaults.check(reward_spec=reward)
    if isinstance(mutator, str):
        defaults.check(mutator_spec=mutator)
    config.check_mutator(mutator)


__all__ = [
    "REQUEST_KEY", "REQUEST_START_KEY", "Components", "Delta", "Event", "Final", "GatedReward", "Mutator", "Policy",
    "Progress", "Reward", "UsesEmbedder", "as_mutator", "as_reward", "check_components", "check_names",
    "component_name", "cut", "knobs", "pydantic_fields", "require", "require_text", "resolve", "search_config",
]
