"""The exceptions darwin-chains raises. Each message names the component at fault and what to do about it."""
from __future__ import annotations

from typing import Any


class DarwinError(Exception):
    """Base class. `partial` holds the search result reached before the failure, when there was one."""

    partial: Any = None


class ConfigError(DarwinError, ValueError):
    """A search or component was configured with values that cannot work."""


class InputError(DarwinError, ValueError):
    """The instruction or conversation cannot be searched (empty, too long for the context window, ...)."""


class PolicyError(DarwinError):
    """The policy failed to start or extend beams."""


class RewardError(DarwinError):
    """The reward raised, or returned something that is not a finite float per response."""


class MutationError(DarwinError):
    """The mutator failed in a way that falling back to the original instruction cannot hide."""


class BudgetError(DarwinError):
    """A budget ran out before the search had decoded any text to answer with (a long prompt, a short budget)."""


class UngroundedError(DarwinError):
    """`on_ungrounded="raise"`: no candidate answer was grounded in the prompt's context. `partial` holds the best
    answer, with its verdict."""


class MissingDependencyError(DarwinError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def require(module: str, extra: str | None = None, package: str | None = None):
    """Import an optional dependency, or fail with the exact command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        target = f"darwin-chains[{extra}]" if extra else (package or module)
        raise MissingDependencyError(f"{module} is not installed; run: pip install '{target}'") from exc
