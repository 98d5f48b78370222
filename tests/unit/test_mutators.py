"""Mutators: the template mutator, list parsing, the LLM mutator's validation over a scripted policy, and the
prompt's directions ("Be brief.") that no variant may contradict."""
from __future__ import annotations

import asyncio
import logging

import pytest

from darwin_chains import ConfigError, LLMMutator, Prompt, Search, SearchConfig, TemplateMutator
from darwin_chains.mutators import TEMPLATES, parse_list
from darwin_chains.mutators.directions import directions
from darwin_chains.testing import KeywordReward, ScriptedPolicy
from darwin_chains.protocols import as_mutator
from darwin_chains.testing.contracts import MutatorContract

from tests.support.searches import suffix_mutator

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


class TestCallableMutatorContract(MutatorContract):
    """A plain function `(instruction, n) -> list[str]` as the mutator (`as_mutator` wraps it)."""

    @pytest.fixture
    def mutator(self):
        return as_mutator(suffix_mutator)


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


# The prompt's directions: no variant may contradict them.

LENGTHENING = ("Answer step by step.", "Include a concrete example.", "with a short list", "thorough, detailed",
               "Explain it simply")
QUESTION = "Why do cats purr?"


@pytest.mark.parametrize("text, expected", [
    ("Be brief.", {"shorter"}),
    ("Answer in one sentence.", {"shorter", "no-list"}),
    ("Reply in at most 20 words.", {"shorter"}),
    ("Use three sentences maximum and keep the answer concise.", {"shorter"}),  # the hub's rlm/rag-prompt
    ("Return only JSON.", {"exact"}),
    ("Answer with only the number.", {"exact"}),
    ("Do not use a list.", {"no-list"}),
    ("Don't use bullet points.", {"no-list"}),
    ("Explain it in detail, step by step.", {"longer", "steps"}),
    ("Write formally, for experts.", {"formal", "expert"}),
    ("Answer the question using only this context.", set()),  # the RAG benchmark's system message
    (INSTRUCTION, set()),
])
def test_directions_are_read_from_cue_phrases(text, expected):
    assert directions(text) == expected


def test_each_template_is_tagged_with_what_the_cue_table_reads_in_it():
    # The LLM mutator's check reads rewrites with the same table, so it must recognise every template's addition.
    for template in TEMPLATES:
        assert directions(" ".join(template.added)) == set(template.directs), template.text


@pytest.mark.parametrize("instruction, context, forbidden", [
    (f"{QUESTION} Be brief.", "", LENGTHENING),
    (QUESTION, "Answer the question using the context. Be brief.\n\nContext: cats purr when content.", LENGTHENING),
    (QUESTION, "Answer in one sentence.", LENGTHENING),
    (f"{QUESTION} Reply in at most 20 words.", "", LENGTHENING),
    ("List the planets by size.", "Return only JSON.", LENGTHENING),
    (QUESTION, "Use three sentences maximum and keep the answer concise.", LENGTHENING),
    (QUESTION, "Do not use a list.", ("Answer step by step.", "with a short list")),
    (f"{QUESTION} Give a detailed answer.", "", ("Be concise",)),
])
def test_template_mutator_never_contradicts_the_prompt(instruction, context, forbidden):
    mutator = TemplateMutator()
    for seed in range(40):
        for variant in mutator.mutate(instruction, 5, seed, context=context):
            assert instruction in variant
            assert not any(phrase in variant for phrase in forbidden), (seed, variant)
            for again in mutator.mutate(variant, 5, seed, context=context):  # a later cycle's parent
                assert not any(phrase in again for phrase in forbidden), (seed, again)


def test_template_mutator_uses_what_fits_each_once_before_repeats():
    variants = TemplateMutator().mutate(QUESTION, 5, seed=0, context="Be brief.")
    assert len(set(variants)) == 3  # concision, accuracy and the "Please answer" prefix; then repeats
    assert {v.replace(QUESTION, "").strip() for v in variants} == {
        "Be concise and specific.", "Make sure the answer is accurate and addresses exactly what is asked.",
        "Please answer the following helpfully and accurately."}


@pytest.mark.parametrize("context", ["", "Answer the question using only this context.\n\nContext: cats purr."])
def test_a_prompt_without_directions_gets_every_template(context):
    mutator = TemplateMutator()
    assert mutator.fitting(INSTRUCTION, context) == list(TEMPLATES)
    assert len(set(mutator.mutate(INSTRUCTION, len(TEMPLATES), seed=3, context=context))) == len(TEMPLATES)


def test_when_every_template_contradicts_the_prompt_the_variants_are_the_instruction():
    mutator = TemplateMutator(["{instruction}\n\nAnswer step by step.", "{instruction}\n\nGive a detailed answer."])
    assert [t.directs for t in mutator.templates] == [("steps",), ("longer",)]  # read from plain text
    assert mutator.mutate(QUESTION, 3, seed=0, context="Be brief.") == [QUESTION] * 3


def test_respect_directions_off_uses_every_template():
    variants = TemplateMutator(respect_directions=False).mutate(QUESTION, 8, seed=0, context="Be brief.")
    assert len(set(variants)) == len(TEMPLATES) and any("step by step" in v for v in variants)


DETAILED = ("1. Explain in detail how to write a clear email, with three tips.\n"
            "2. What are three tips for writing a clear email?\n"
            "3. Give three tips for writing a clear email, step by step.\n")


def test_llm_mutator_rejects_a_rewrite_that_contradicts_the_prompt():
    mutator = LLMMutator(ScriptedPolicy(default=DETAILED))
    variants = mutator.mutate(INSTRUCTION, 3, seed=0, context="Be brief.")
    assert variants == ["What are three tips for writing a clear email?", INSTRUCTION, INSTRUCTION]
    assert dict(variants.rejected) == {
        "Explain in detail how to write a clear email, with three tips.":
            "contradicts the prompt: asks for a long, detailed answer where the prompt asks for a short answer",
        "Give three tips for writing a clear email, step by step.":
            "contradicts the prompt: asks for steps where the prompt asks for a short answer"}
    assert asyncio.run(mutator.amutate(INSTRUCTION, 3, seed=0, context="Be brief.")) == variants
    assert mutator.mutate(f"{INSTRUCTION} Be brief.", 3, seed=0).rejected[0][1].startswith("contradicts the prompt")
    assert not mutator.mutate(INSTRUCTION, 3, seed=0).rejected  # nothing to contradict


# In a search: the context reaches mutators that take it; three-argument mutators still work.

BRIEF_RAG = Prompt.of(  # what mark_question makes of a hub-style prompt
    f"Answer using the context. Be brief.\n\nContext: cats purr when content.\n\nQuestion: {QUESTION}",
    request=QUESTION)
CONFIG = SearchConfig(mutants=5, keep_top=2, replacement_period=2, max_new_tokens=6, mutation_cycles=3)


def _search(mutator, prompt=BRIEF_RAG, run_async=False):
    policy = ScriptedPolicy(default="cats purr when they are content")
    search = Search(policy, KeywordReward(["purr"]), mutator, CONFIG)
    result = asyncio.run(search.arun(prompt)) if run_async else search.run(prompt)
    return result, [request for call in policy.calls("start") for request in call[1]]


@pytest.mark.parametrize("run_async", [False, True])
def test_a_search_gives_the_template_mutator_the_prompt_context(run_async):
    result, requests = _search(TemplateMutator(), run_async=run_async)
    assert result.answer and len(requests) > 5
    assert all(not any(phrase in r for phrase in LENGTHENING) for r in requests)
    _, unfiltered = _search(TemplateMutator(respect_directions=False), run_async=run_async)
    assert any(any(phrase in r for phrase in LENGTHENING) for r in unfiltered)


class ThreeArguments:
    """A user's mutator written to the three-argument protocol, before mutators could take the context."""

    def __init__(self):
        self.calls = []

    def mutate(self, instruction, n, seed):
        self.calls.append((instruction, n, seed))
        return [f"{instruction} (variant {i})" for i in range(n)]


@pytest.mark.parametrize("run_async", [False, True])
def test_a_three_argument_mutator_still_works_in_a_search(run_async):
    mutator = ThreeArguments()
    result, requests = _search(mutator, run_async=run_async)
    assert result.answer and len(mutator.calls) == CONFIG.mutation_cycles
    assert f"{QUESTION} (variant 0)" in requests


def test_a_search_reports_the_llm_mutator_rejecting_a_contradicting_rewrite():
    mutator = LLMMutator(ScriptedPolicy(default=DETAILED))
    prompt = Prompt.of([("system", "Be brief."), ("user", INSTRUCTION)])
    result, _ = _search(mutator, prompt)
    assert ("Explain in detail how to write a clear email, with three tips.",
            "contradicts the prompt: asks for a long, detailed answer where the prompt asks for a short answer"
            ) in result.trace.mutation_rejections
