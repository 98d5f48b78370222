"""The shipped preference reward on the real packaged MiniLM and the shipped weights (no mocks)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from darwin_chains import ConfigError, Prompt, defaults
from darwin_chains.rewards import PreferenceReward
from darwin_chains.rewards.preference import STYLE, WEIGHTS, PreferenceHead

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def reward(minilm) -> PreferenceReward:
    return PreferenceReward(embedder=minilm)


def test_shipped_weights_load_with_their_training_record():
    head = PreferenceHead.load(WEIGHTS)
    assert WEIGHTS.stat().st_size < 1_000_000
    assert len(head.weights) == 2 * 384 + 2 + len(STYLE)
    assert head.meta["training"]["seed"] == 0
    assert head.meta["validation"]["whole_length_matched"] > 0.5
    assert math.isfinite(head.length_weight)


def test_default_reward_is_preference():
    assert defaults.reward("preference").name == "preference"
    assert isinstance(defaults.reward(), PreferenceReward)
    assert defaults.reward("relevance").name == "relevance-minilm"


def test_scores_are_finite_floats_one_per_response_and_empty_is_lowest(reward):
    prompt = Prompt.of("Give three tips for writing a clear email.")
    responses = ["Use a clear subject line, keep it short, and proofread before sending.", "", "   ", "Sure"]
    scores = reward.score(prompt, responses)
    assert len(scores) == len(responses)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scores[1] == scores[2] == reward.head.empty_score
    assert scores[1] < min(scores[0], scores[3])
    assert reward.score(prompt, []) == []


async def test_ascore_matches_score(reward):
    prompt = Prompt.of("Name a primary colour.")
    assert await reward.ascore(prompt, ["Red.", "Blue is one."]) == pytest.approx(
        reward.score(prompt, ["Red.", "Blue is one."]))


def test_judges_the_final_user_message_of_a_conversation(reward):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What colour is the sky?"}]
    responses = ["The sky is blue because air scatters blue light more than red light.", "Bananas are yellow."]
    assert reward.score(Prompt.of(messages), responses) == pytest.approx(
        reward.score(Prompt.of("What colour is the sky?"), responses))


@pytest.mark.xfail(strict=True, reason="known weakness: the shipped head scores this recipe above the on-topic tips "
                   "(on validation answers it prefers the on-topic one in 82% of pairs); see benchmarks/reward")
def test_relevant_answer_beats_off_topic_answer_of_the_same_length(reward):
    prompt = Prompt.of("Give three tips for writing a clear email.")
    relevant = ("1. Write a specific subject line. 2. Put the main request in the first sentence. "
                "3. Keep paragraphs short and proofread before you send it.")
    off_topic = ("1. Preheat the oven to a moderate heat. 2. Mix the flour, sugar and butter in a bowl. "
                 "3. Bake the cake for thirty minutes until golden.")
    assert abs(len(relevant.split()) - len(off_topic.split())) <= 3
    good, bad = reward.score(prompt, [relevant, off_topic])
    assert good > bad


def test_prefers_the_judges_winner_on_clear_cut_held_out_pairs(reward):
    # Validation-split instructions (never trained on): a strong model's winning answer against a weak model's
    # losing answer of similar length, chosen by a fixed rule before scoring (see the fixture's "source").
    pairs = json.loads((FIXTURES / "preference_clear_pairs.json").read_text())["pairs"]
    wins = 0
    for p in pairs:
        winner, loser = reward.score(Prompt.of(p["instruction"]), [p["winner"], p["loser"]])
        wins += winner > loser
    assert wins >= 0.7 * len(pairs), f"{wins}/{len(pairs)}"


def test_missing_or_corrupt_weights_raise_config_error_naming_the_path(tmp_path):
    with pytest.raises(ConfigError, match="nope.json"):
        PreferenceReward(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        PreferenceReward(bad)
    data = json.loads(WEIGHTS.read_text())
    data["scale"] = data["scale"][:-1]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="corrupt"):
        PreferenceReward(bad)


def test_training_on_a_tiny_subset_is_reproducible_with_the_seed(minilm, tmp_path):
    from darwin_chains import reward_training as rt

    rows = [json.loads(line) for line in (FIXTURES / "preference_rows_sample.jsonl").read_text().splitlines()]
    cache = rt.EmbeddingCache()
    settings = rt.Settings(seed=3, validation_share=0.0, prefix_tokens=(), l2=0.01, epochs=50)
    first, _ = rt.train(settings, cache=cache, rows=rows, evaluate=False)
    second, _ = rt.train(settings, cache=cache, rows=rows, evaluate=False)
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.meta["training"]["training_pairs"] > 20
    first.save(tmp_path / "head.json")
    again = PreferenceReward(tmp_path / "head.json", embedder=minilm)
    assert len(again.score(Prompt.of("what should i call you?"), ["Call me Assistant.", ""])) == 2
