"""Mutators: the template mutator, list parsing, and the LLM mutator's validation on a real policy."""
from __future__ import annotations

import logging

import pytest

from darwin_chains import ConfigError, LLMMutator, TemplateMutator
from darwin_chains.mutators import parse_list

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


class ScriptedPolicyOutput:
    """A policy whose only answer is fixed text: isolates the mutator's parsing and validation."""

    def __init__(self, text):
        from darwin_chains.testing import FakePolicy

        self.inner = FakePolicy()
        self.text = text
        self.name, self.supports_continuation, self.max_context = "scripted", True, None

    def start(self, prompts, max_new_tokens):
        return self.inner.start(prompts, max_new_tokens)

    def extend(self, beams, max_new_tokens, sampling, seed):
        for b in beams:
            b.response, b.tokens, b.finished = self.text, len(self.text.split()), True
        from darwin_chains import Usage

        return Usage()

    def adopt(self, beam, donor):
        return self.inner.adopt(beam, donor)


def test_llm_mutator_rejects_answers_using_real_embeddings(minilm, caplog):
    output = ("1. Write three tips on composing a clear email.\n"
              "2. Use a clear subject line and keep it short.\n"  # an answer, not a rewrite
              "3. Write three tips on composing a clear email.\n"  # duplicate
              "4. How do I write a clear email? Give me three tips.\n"
              "5. Bananas.\n")
    mutator = LLMMutator(ScriptedPolicyOutput(output), embedder=minilm)
    with caplog.at_level(logging.WARNING):
        variants = mutator.mutate(INSTRUCTION, 4, seed=0)
    assert variants == ["Write three tips on composing a clear email.",
                        "How do I write a clear email? Give me three tips.", INSTRUCTION, INSTRUCTION]
    reasons = dict(mutator.rejected)
    assert reasons["Write three tips on composing a clear email."] == "duplicate"
    assert reasons["Bananas."] == "too short for a rewrite"
    assert "an answer, not a rewrite" in reasons["Use a clear subject line and keep it short."]
    assert "fall back to the original" in caplog.text


@pytest.mark.integration
def test_llm_mutator_on_the_embedded_model_validates_and_falls_back(smollm2_policy, minilm):
    """SmolLM2-135M tends to answer instead of rewriting; whatever it writes, the result is usable."""
    mutator = LLMMutator(smollm2_policy, embedder=minilm, max_new_tokens=96)
    variants = mutator.mutate(INSTRUCTION, 5, seed=0)
    assert len(variants) == 5 and all(v.strip() for v in variants)
    similarity = minilm.similarity(INSTRUCTION, variants)
    assert min(similarity) >= mutator.min_similarity  # every kept variant is a rewrite, or the original itself
    rejected = {candidate for candidate, _ in mutator.rejected}
    assert not rejected & set(variants)
    assert mutator.rejected or any(v != INSTRUCTION for v in variants)  # it did judge something
