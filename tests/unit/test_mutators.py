"""Mutators: the template mutator, list parsing, and the LLM mutator's validation over a scripted policy."""
from __future__ import annotations

import logging

import pytest

from darwin_chains import ConfigError, LLMMutator, TemplateMutator
from darwin_chains.mutators import parse_list
from darwin_chains.testing import ScriptedPolicy
from darwin_chains.testing.contracts import MutatorContract

INSTRUCTION = "Give three tips for writing a clear email."


def test_template_mutator_gives_n_seeded_variants_that_keep_the_instruction():
    mutator = TemplateMutator()
    variants = mutator.mutate(INSTRUCTION, 5, seed=0)
    assert len(variants) == len(set(variants)) == 5
    assert all(INSTRUCTION in v for v in variants)
    assert variants == mutator.mutate(INSTRUCTION, 5, seed=0)
    assert variants != mutator.mutate(INSTRUCTION, 5, seed=1)
    assert len(mutator.mutate(INSTRUCTION, 20, seed=0)) == 20  # more than there are templates: repeats


def test_template_mutator_does_not_add_what_a_variant_already_says():
    mutator = TemplateMutator()
    for variant in mutator.mutate(INSTRUCTION, 5, seed=0):  # a later cycle's parent is an earlier variant
        added = variant.replace(INSTRUCTION, "").strip()
        assert all(v.count(added) == 1 for v in mutator.mutate(variant, 7, seed=1))  # the 7 other templates


def test_template_mutator_leaves_braces_in_instructions_alone():
    assert all("{x}" in v for v in TemplateMutator().mutate("Format {x} as JSON.", 3, seed=0))


def test_template_needs_the_placeholder():
    with pytest.raises(ConfigError, match="{instruction}"):
        TemplateMutator(["no placeholder"])


@pytest.mark.parametrize("text, expected", [
    ("1. Write a clear email.\n2) Explain email clarity.\n3: Tips please", ["Write a clear email.",
                                                                          "Explain email clarity.", "Tips please"]),
    ("- first rewrite\n* second rewrite\n\u2022 third", ["first rewrite", "second rewrite", "third"]),
    ('Sure! ["a rewrite", "another"]', ["a rewrite", "another"]),
    ('{"rewrites": ["one", "two"]}', ["one", "two"]),
    ('Rewrite 1: "Quoted version"', ["Quoted version"]),
    ("Just one line", ["Just one line"]),
    ("", []),
])
def test_parse_list_shapes(text, expected):
    assert parse_list(text) == expected


OUTPUT = ("1. Write three tips on composing a clear email.\n"
          "2. Use a clear subject line and keep it short.\n"  # an answer, not a rewrite: only embeddings tell
          "3. Write three tips on composing a clear email.\n"  # duplicate
          "4. How do I write a clear email? Give me three tips.\n"
          "5. Bananas.\n")


class TestTemplateMutatorContract(MutatorContract):
    @pytest.fixture
    def mutator(self):
        return TemplateMutator()


class TestLLMMutatorContract(MutatorContract):
    @pytest.fixture
    def mutator(self):
        return LLMMutator(ScriptedPolicy(default=OUTPUT, supports_continuation=False))


def test_llm_mutator_asks_its_policy_and_drops_duplicates_and_fragments(caplog):
    policy = ScriptedPolicy(default=OUTPUT)
    mutator = LLMMutator(policy)
    with caplog.at_level(logging.WARNING):
        variants = mutator.mutate(INSTRUCTION, 4, seed=0)
    assert policy.calls("start")[0][1] == (mutator.request(INSTRUCTION, 4),)
    assert variants == ["Write three tips on composing a clear email.", "Use a clear subject line and keep it short.",
                        "How do I write a clear email? Give me three tips.", INSTRUCTION]
    assert dict(variants.rejected) == {"Write three tips on composing a clear email.": "duplicate",
                                       "Bananas.": "too short for a rewrite"}
    assert "fall back to the original" in caplog.text
