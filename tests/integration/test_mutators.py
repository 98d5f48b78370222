"""The LLM mutator's validation with real MiniLM embeddings, and on the embedded SmolLM2."""
from __future__ import annotations

import logging

from darwin_chains import LLMMutator
from darwin_chains.testing import ScriptedPolicy
from tests.unit.test_mutators import INSTRUCTION, OUTPUT


def test_llm_mutator_rejects_answers_using_real_embeddings(minilm, caplog):
    mutator = LLMMutator(ScriptedPolicy(default=OUTPUT, supports_continuation=False), embedder=minilm)
    with caplog.at_level(logging.WARNING):
        variants = mutator.mutate(INSTRUCTION, 4, seed=0)
    assert variants == ["Write three tips on composing a clear email.",
                        "How do I write a clear email? Give me three tips.", INSTRUCTION, INSTRUCTION]
    reasons = dict(variants.rejected)
    assert reasons["Write three tips on composing a clear email."] == "duplicate"
    assert reasons["Bananas."] == "too short for a rewrite"
    assert "an answer, not a rewrite" in reasons["Use a clear subject line and keep it short."]
    assert "fall back to the original" in caplog.text


def test_llm_mutator_on_the_embedded_model_validates_and_falls_back(smollm2_policy, minilm):
    """SmolLM2-135M tends to answer instead of rewriting; whatever it writes, the result is usable."""
    mutator = LLMMutator(smollm2_policy, embedder=minilm, max_new_tokens=96)
    variants = mutator.mutate(INSTRUCTION, 5, seed=0)
    assert len(variants) == 5 and all(v.strip() for v in variants)
    similarity = minilm.similarity(INSTRUCTION, variants)
    assert min(similarity) >= mutator.min_similarity  # every kept variant is a rewrite, or the original itself
    rejected = {candidate for candidate, _ in variants.rejected}
    assert not rejected & set(variants)
    assert variants.rejected or any(v != INSTRUCTION for v in variants)  # it did judge something
