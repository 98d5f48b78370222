"""`Components`: what an adapter holds instead of loaded models. Specs resolve on first use, once."""
from __future__ import annotations

import threading

import pytest

from darwin_chains import ConfigError, Prompt, TemplateMutator
from darwin_chains.search.components import Components
from darwin_chains.testing import FakePolicy, KeywordReward


def test_nothing_is_resolved_at_construction():
    components = Components("hf:/no/such/model", "default", "template")  # would fail (and load) if resolved
    assert components.loaded_policy is None and not components.resolved
    assert components.policy_name == "hf:/no/such/model"
    with pytest.raises(ConfigError, match="no/such/model"):
        components.policy()


def test_the_default_policy_is_named_without_loading(monkeypatch):
    monkeypatch.setenv("DARWIN_CHAINS_POLICY", "openai:m@http://127.0.0.1:9")
    assert Components().policy_name == "openai:m@http://127.0.0.1:9"
    monkeypatch.delenv("DARWIN_CHAINS_POLICY")
    assert Components().policy_name == "embedded"


def test_objects_are_kept_and_specs_resolve_through_defaults():
    policy, reward = FakePolicy(name="fake-a"), KeywordReward()
    components = Components(policy, reward, "template")
    assert components.loaded_policy is policy and components.policy_name == "fake-a"
    got, scored, mutator = components.get()
    assert got is policy and scored is reward and isinstance(mutator, TemplateMutator)
    assert Components(policy, reward, "none").get()[2] is None and Components(policy, reward, None).get()[2] is None
    assert Components(policy, lambda i, r: 1.0, None).get()[1].score(Prompt.of("hi"), ["x"]) == [1.0]


def test_threads_asking_at_once_get_the_same_components():
    components = Components(FakePolicy(), KeywordReward(), "template")
    seen, start = [], threading.Barrier(4)

    def ask():
        start.wait()
        seen.append(components.get())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(s is seen[0] for s in seen) and components.resolved


def test_a_policy_from_a_spec_is_checked_before_it_is_kept(tmp_path):
    def refuse(policy):
        raise ConfigError("too small")

    components = Components(str(tmp_path / "missing"), check=refuse)
    with pytest.raises(ConfigError):
        components.policy()
    assert components.loaded_policy is None
