"""One registry of component specs serves `defaults`, the CLI's help and both adapters' construction checks.

Only names are checked here: building a component would load a model, and nothing here does.
"""
from __future__ import annotations

import re

import pytest

from darwin_chains import ConfigError, defaults
from darwin_chains.cli import main

KINDS = ("policy", "reward", "mutator")
PLAIN = {kind: [n for n in defaults.names(kind) if ":" not in n] for kind in KINDS}


def test_every_kind_has_specs_with_a_line_each():
    for kind in KINDS:
        entries = defaults.REGISTRY[kind]
        assert entries and all(e.doc for e in entries)
        text = defaults.describe(kind)
        assert all(f"{e.name}: {e.doc}" in text for e in entries)
    assert (defaults.names("reward")[0], defaults.names("mutator")[0]) == ("default", "template")


@pytest.mark.parametrize("kind", ["reward", "mutator"])
def test_an_unknown_name_lists_every_known_one(kind):
    with pytest.raises(ConfigError, match=f"unknown {kind} 'nonsense'") as info:
        defaults.check(**{f"{kind}_spec": "nonsense"})
    assert all(name in str(info.value) for name in defaults.names(kind))


def test_known_names_and_prefixes_pass_the_check_without_loading():
    for name in PLAIN["reward"]:
        defaults.check(reward_spec=name)
    for name in PLAIN["mutator"]:
        defaults.check(mutator_spec=name)
    defaults.check(reward_spec="hf:/models/my-reward")
    assert defaults.lookup("policy", "openai:m@http://x/v1").name == "openai:MODEL@BASE_URL"
    assert defaults.lookup("policy", "/some/model/dir").name == "hf:PATH"  # a bare directory is a local model


def test_none_is_no_mutator_and_a_missing_directory_names_the_options(tmp_path):
    assert defaults.mutator("none") is None
    with pytest.raises(ConfigError, match="is neither 'embedded'"):
        defaults.policy(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="names no model"):
        defaults.policy("openai:@http://127.0.0.1:1/v1")


def test_cli_help_lists_every_spec(capsys):
    with pytest.raises(SystemExit):
        main(["align", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for kind in KINDS:
        for name in defaults.names(kind):
            assert name in text, (kind, name)


@pytest.mark.parametrize("kind", ["reward", "mutator"])
def test_both_adapters_check_specs_against_the_registry(kind):
    from langchain_darwin import DarwinAlign
    from llama_index.llms.darwin import DarwinLLM

    for make in (DarwinAlign, DarwinLLM):
        for name in PLAIN[kind]:
            make(**{kind: name, "method": "best-of-n"})
        with pytest.raises(ConfigError, match=f"unknown {kind}"):
            make(**{kind: "nonsense"})


def test_every_remote_option_a_python_caller_can_set_is_reachable_from_a_spec():
    """The CLI and serve name components by spec only: each keyword of OpenAIPolicy and ServedRewardModel (bar the
    client objects, and the key, which comes from OPENAI_API_KEY) is a spec option, RetryPolicy's fields too."""
    import dataclasses
    import inspect

    from darwin_chains.policies.openai import OpenAIPolicy
    from darwin_chains.retry import RetryPolicy
    from darwin_chains.rewards.served import ServedRewardModel

    retry = {f.name for f in dataclasses.fields(RetryPolicy)}
    assert set(defaults.RETRY_OPTIONS) == retry
    for cls, options, left in ((OpenAIPolicy, defaults.OPENAI_OPTIONS, {"client", "model", "async_client"}),
                               (ServedRewardModel, defaults.SERVED_OPTIONS, {"model", "base_url", "api_key"})):
        keywords = set(inspect.signature(cls.__init__).parameters) - {"self"} - left - {"retry"}
        assert keywords | retry == set(options), cls


def test_a_remote_spec_carries_its_options_and_refuses_a_misspelt_one():
    model, url, options = defaults.remote(
        "openai:smollm2@http://127.0.0.1:18000/v1?send_seed=false&max_concurrency=16&attempts=2&timeout=5"
        "&session_header=none&extra_body=%7B%22top_k%22%3A%205%7D", "openai:", defaults.OPENAI_OPTIONS)
    assert (model, url) == ("smollm2", "http://127.0.0.1:18000/v1")
    assert options["send_seed"] is False and options["max_concurrency"] == 16 and options["session_header"] is None
    assert options["extra_body"] == {"top_k": 5} and (options["retry"].attempts, options["retry"].timeout) == (2, 5)
    policy = defaults.policy("openai:smollm2@http://127.0.0.1:9/v1?send_seed=false&mode=tokens")
    assert (policy.send_seed, policy.requested_mode, policy.base_url) == (False, "tokens", "http://127.0.0.1:9/v1")
    for spec, message in (("openai:m@http://h/v1?sendseed=0", "unknown option 'sendseed' (did you mean send_seed?)"),
                          ("openai:m@http://h/v1?send_seed=maybe", "send_seed='maybe' is not true or false"),
                          ("openai:m@http://h/v1?send_seed", "options go after '?' as key=value pairs"),
                          ("served:rm", "names no server; use served:MODEL@BASE_URL")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            defaults.policy(spec) if spec.startswith("openai") else defaults.reward(spec)
