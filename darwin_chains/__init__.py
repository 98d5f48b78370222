"""darwin-chains: better-aligned LLM answers at decode time, by reward-guided evolutionary search (Darwin).

    >>> from darwin_chains import Search, defaults
    >>> search = defaults.search()                      # embedded SmolLM2, template mutator, default reward
    >>> search.run("Give three tips for writing a clear email.").answer

Importing this package loads no model and no torch; models load on first use.
"""
from . import defaults
from .config import METHODS, Sampling, SearchConfig
from .errors import (
    BudgetError,
    ConfigError,
    DarwinError,
    InputError,
    MissingDependencyError,
    MutationError,
    PolicyError,
    RewardError,
    UngroundedError,
)
from .mutators import LLMMutator, TemplateMutator
from .protocols import acomplete, complete
from .policies.hf import HFPolicy
from .prompt import Prompt
from .protocols import Beam, Mutator, Policy, Reward, Usage, as_mutator, as_reward
from .rewards import PreferenceReward, RelevanceReward, WeightedReward
from .search import Search
from .trace import Candidate, Cycle, Period, SearchResult, Trace

__version__ = "0.1.0"

__all__ = [
    "METHODS", "Beam", "BudgetError", "Candidate", "ConfigError", "Cycle", "DarwinError", "HFPolicy", "InputError", "LLMMutator",
    "MissingDependencyError", "MutationError", "Mutator", "Period", "Policy", "PolicyError", "PreferenceReward",
    "Prompt", "RelevanceReward", "Reward", "RewardError", "Sampling", "Search", "SearchConfig", "SearchResult",
    "TemplateMutator", "Trace", "UngroundedError", "Usage", "WeightedReward", "acomplete", "as_mutator", "as_reward", "complete",
    "defaults",
]
