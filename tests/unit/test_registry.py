"""One registry of component specs serves `defaults`, the CLI's help and both adapters' construction checks.

Only names are checked here: building a component would load a model, and nothing here does.
"""
from __future__ import annotations

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
