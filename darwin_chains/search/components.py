"""A search's components, given as objects or specs, resolved on first use and then kept.

The framework adapters hold one of these: constructing an LLM or a Runnable must not load a model, and two
threads asking for the default policy at once must load it once.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Optional

from .. import defaults
from ..protocols import Mutator, Policy, Reward, as_mutator, as_reward, component_name

# Module-level rather than per object: LlamaIndex deep-copies its LLMs, and a lock cannot be copied.
_LOADING = threading.Lock()


class Components:
    """Policy, reward and mutator, each a component or a spec (see `darwin_chains.defaults`), loaded once.

    Example:
        >>> components = Components("embedded", "default", "template")
        >>> components.policy_name          # nothing is loaded yet
        'embedded'
        >>> policy, reward, mutator = components.get()

    A policy spec or None means `defaults.policy` ($DARWIN_CHAINS_POLICY, else the embedded SmolLM2); a reward
    spec or None means `defaults.reward`; a mutator spec means `defaults.mutator` and None means no mutator.
    `mutator_policy` is the model the "llm" mutator asks (default: the policy). `check` sees a policy loaded from
    a spec before it is kept, and may raise (a component given as an object is its owner's to check).
    """

    def __init__(self, policy: Policy | str | None = None, reward: Any = None, mutator: Any = "template", *,
                 mutator_policy: Policy | None = None, check: Optional[Callable[[Policy], None]] = None):
        self.specs = (policy, reward, mutator)  # as given
        self.mutator_policy = mutator_policy
        self.check = check
        self._policy: Optional[Policy] = None if _is_spec(policy) else policy
        self._resolved: Optional[tuple[Policy, Reward, Optional[Mutator]]] = None

    @property
    def loaded_policy(self) -> Optional[Policy]:
        """The policy if it is at hand (given as an object, or loaded), else None; never loads it."""
        return self._policy

    @property
    def resolved(self) -> bool:
        """Whether all three are built."""
        return self._resolved is not None

    @property
    def policy_name(self) -> str:
        """The policy's name, without loading it."""
        if self._policy is not None:
            return component_name(self._policy)
        return self.specs[0] or os.environ.get(defaults.POLICY_ENV) or "embedded"

    def policy(self) -> Policy:
        """The policy, loaded on the first call; the reward and the mutator stay unbuilt."""
        if self._policy is None:
            with _LOADING:
                if self._policy is None:
                    policy = defaults.policy(self.specs[0])
                    if self.check is not None:
                        self.check(policy)
                    self._policy = policy
        return self._policy

    def get(self) -> tuple[Policy, Reward, Optional[Mutator]]:
        """Policy, reward and mutator, built on the first call."""
        if self._resolved is None:
            policy = self.policy()
            with _LOADING:
                if self._resolved is None:
                    self._resolved = (policy, self._reward(policy), self._mutator(policy))
        return self._resolved

    def _reward(self, policy: Policy) -> Reward:
        reward = self.specs[1]
        return defaults.reward(reward, policy) if _is_spec(reward) else as_reward(reward)

    def _mutator(self, policy: Policy) -> Optional[Mutator]:
        mutator = self.specs[2]
        if mutator is None:
            return None
        if isinstance(mutator, str):
            return defaults.mutator(mutator, self.mutator_policy or policy)
        return as_mutator(mutator)


def _is_spec(value: Any) -> bool:
    return value is None or isinstance(value, str)
