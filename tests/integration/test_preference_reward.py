"""The shipped preference rewards on the real packaged models and the shipped weights (no mocks): the default head
over SmolLM2's hidden states, and the lighter MiniLM head."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from darwin_chains import ConfigError, Prompt, defaults
from darwin_chains.rewards import MiniLMPreferenceReward, PreferenceReward
from darwin_chains.rewards.hidden_states import shared_encoder
from darwin_chains.rewards.preference import MINILM_WEIGHTS, STYLE, WEIGHTS, PreferenceHead
from darwin_chains.testing.contracts import RewardContract

FIXTURES = Path(__file__).parents[1] / "fixtures"
EMAIL = Prompt.of("Give three tips for writing a clear email.")


@pytest.fixture(scope="module")
def encoder(smollm2_dir):
    return shared_encoder()


@pytest.fixture(scope="module", params=["smollm2", "minilm"])
def reward(request, minilm):
    if request.param == "minilm":
        return MiniLMPreferenceReward(embedder=minilm)
    return PreferenceReward(encoder=request.getfixturevalue("encoder"))


def test_shipped_weights_load_with_their_training_record():
    for path, width in [(WEIGHTS, 2 * 576 + 2), (MINILM_WEIGHTS, 2 * 384 + 2 + len(STYLE))]:
        head = PreferenceHead.load(path, json.loads(path.read_text())["features"])
        assert path.stat().st_size < 1_000_000
        assert len(head.weights) == width
        assert head.meta["training"]["seed"] == 0
        assert head.meta["validation"]["whole_length_matched"] > 0.5
        assert math.isfinite(head.length_weight)


def test_default_reward_is_the_smollm2_head():
    assert defaults.reward("preference").name == "preference"
    assert isinstance(defaults.reward(), PreferenceReward)
    assert isinstance(defaults.reward("preference-minilm"), MiniLMPreferenceReward)
    assert defaults.reward("relevance").name == "relevance-minilm"


class TestDefaultRewardContract(RewardContract):
    """The reward a search gets when none is named: `defaults.reward()`, the SmolLM2 preference head."""

    @pytest.fixture
    def reward(self, smollm2_dir):
        return defaults.reward()


class TestMiniLMPreferenceRewardContract(RewardContract):
    @pytest.fixture
    def reward(self, minilm):
        return MiniLMPreferenceReward(embedder=minilm)


def test_construction_reads_only_the_head_and_the_model_loads_at_first_score():
    reward = PreferenceReward()
    assert reward._encoder is None


def test_scores_are_finite_floats_one_per_response_and_empty_is_lowest(reward):
    responses = ["Use a clear subject line, keep it short, and proofread before sending.", "", "   ", "Sure"]
    scores = reward.score(EMAIL, responses)
    assert len(scores) == len(responses)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert scores[1] == scores[2] == reward.head.empty_score
    assert scores[1] < min(scores[0], scores[3])
    assert reward.score(EMAIL, []) == []


async def test_ascore_matches_score(reward):
    prompt = Prompt.of("Name a primary colour.")
    assert await reward.ascore(prompt, ["Red.", "Blue is one."]) == pytest.approx(
        reward.score(prompt, ["Red.", "Blue is one."]), abs=1e-4)


def test_judges_the_final_user_message_of_a_conversation(reward):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What colour is the sky?"}]
    responses = ["The sky is blue because air scatters blue light more than red light.", "Bananas are yellow."]
    assert reward.score(Prompt.of(messages), responses) == pytest.approx(
        reward.score(Prompt.of("What colour is the sky?"), responses), abs=1e-4)


RELEVANT = ("1. Write a specific subject line. 2. Put the main request in the first sentence. "
            "3. Keep paragraphs short and proofread before you send it.")
OFF_TOPIC = ("1. Preheat the oven to a moderate heat. 2. Mix the flour, sugar and butter in a bowl. "
             "3. Bake the cake for thirty minutes until golden.")


def test_relevant_answer_beats_off_topic_answer_of_the_same_length(encoder):
    assert abs(len(RELEVANT.split()) - len(OFF_TOPIC.split())) <= 3
    good, bad = PreferenceReward(encoder=encoder).score(EMAIL, [RELEVANT, OFF_TOPIC])
    assert good > bad


@pytest.mark.xfail(strict=True, reason="known weakness of the MiniLM head: it scores this recipe above the on-topic "
                   "tips (on validation answers it prefers the on-topic one in 82% of pairs); see benchmarks/reward")
def test_minilm_head_relevant_answer_beats_off_topic_answer(minilm):
    good, bad = MiniLMPreferenceReward(embedder=minilm).score(EMAIL, [RELEVANT, OFF_TOPIC])
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


def test_prefix_means_from_one_pass_equal_a_pass_over_the_cut_response(encoder):
    # Training reads every prefix's features from one causal pass; scoring sees the cut text on its own.
    ids = encoder.tokenizer(RELEVANT, add_special_tokens=False)["input_ids"]
    cut = encoder.tokenizer.decode(ids[:12])
    assert encoder.tokenizer(cut, add_special_tokens=False)["input_ids"] == ids[:12]
    both = encoder.encode([(EMAIL.instruction, RELEVANT)], cuts=[12, 256])
    alone = encoder.encode([(EMAIL.instruction, cut)])
    np.testing.assert_allclose(both[0, 0], alone[0], rtol=0, atol=0.05 * np.abs(alone).max())
    assert not np.allclose(both[0, 0], both[0, 1], atol=0.05 * np.abs(alone).max())


def test_features_do_not_depend_on_the_batch_they_are_computed_in(encoder):
    # Right padding with an attention mask: a short response scored beside long ones gets its own features.
    long_one = " ".join([RELEVANT] * 6)
    alone = encoder.encode([(EMAIL.instruction, "Be brief.")])
    batched = encoder.encode([(EMAIL.instruction, long_one), (EMAIL.instruction, "Be brief."),
                              ("Another instruction entirely.", long_one)])
    np.testing.assert_allclose(batched[1], alone[0], rtol=0, atol=0.05 * np.abs(alone).max())
    assert encoder.encode([(EMAIL.instruction, long_one * 3)]).shape == (1, encoder.dim)


def test_the_instruction_changes_the_features(encoder):
    one = encoder.encode([(EMAIL.instruction, RELEVANT)])
    other = encoder.encode([("How do I bake a cake?", RELEVANT)])
    assert not np.allclose(one, other, atol=1e-3)


@pytest.mark.parametrize("cls,path", [(PreferenceReward, WEIGHTS), (MiniLMPreferenceReward, MINILM_WEIGHTS)])
def test_missing_or_corrupt_weights_raise_config_error_naming_the_path(cls, path, tmp_path):
    with pytest.raises(ConfigError, match="nope.json"):
        cls(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        cls(bad)
    data = json.loads(path.read_text())
    data["scale"] = data["scale"][:-1]
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="corrupt"):
        cls(bad)


def test_a_head_for_the_other_backbone_is_refused_by_name():
    with pytest.raises(ConfigError, match="features"):
        PreferenceReward(MINILM_WEIGHTS)
    with pytest.raises(ConfigError, match="features"):
        MiniLMPreferenceReward(WEIGHTS)


def _rows() -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "preference_rows_sample.jsonl").read_text().splitlines()]


def test_minilm_training_on_a_tiny_subset_is_reproducible_with_the_seed(minilm, tmp_path):
    from training import reward_training as rt

    settings = rt.Settings(seed=3, backbone="minilm", validation_share=0.0, prefix_tokens=(), l2=0.01, epochs=50)
    table = rt.MiniLMTable()
    first, _ = rt.train(settings, table=table, rows=_rows(), evaluate=False)
    second, _ = rt.train(settings, table=table, rows=_rows(), evaluate=False)
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.meta["training"]["training_pairs"] > 20
    first.save(tmp_path / "head.json")
    again = MiniLMPreferenceReward(tmp_path / "head.json", embedder=minilm)
    assert len(again.score(Prompt.of("what should i call you?"), ["Call me Assistant.", ""])) == 2


def test_smollm2_training_on_a_tiny_subset_is_reproducible_and_the_head_scores(encoder, tmp_path):
    from training import reward_training as rt

    rows = _rows()[:24]
    settings = rt.Settings(seed=3, validation_share=0.0, prefix_tokens=(40,), l2=0.1, epochs=50)
    cache = rt.EmbeddingCache(tmp_path / "features")
    table = rt.HiddenStateTable(cache, rt.PrefixCutter())
    first, _ = rt.train(settings, table=table, rows=rows, evaluate=False)
    assert list(cache.directory.glob("shard-*.npz")), "the features were cached"
    # Training's features (one pass per answer, prefix means, cached) are the ones the reward computes when scoring.
    instruction, answer = rows[0]["instruction"], rows[0]["output_2"]
    trained_on = table.features(instruction, [answer])
    scored_with = PreferenceReward(encoder=encoder)._features(instruction, [answer])
    np.testing.assert_allclose(trained_on, scored_with, rtol=0.02, atol=0.02 * np.abs(scored_with).max())
    second, _ = rt.train(settings, table=rt.HiddenStateTable(rt.EmbeddingCache(cache.directory), rt.PrefixCutter()),
                         rows=rows, evaluate=False)
    np.testing.assert_array_equal(first.weights, second.weights)
    assert first.meta["training"]["backbone"].startswith("SmolLM2")
    first.save(tmp_path / "head.json")
    scores = PreferenceReward(tmp_path / "head.json", encoder=encoder).score(EMAIL, [RELEVANT, ""])
    assert math.isfinite(scores[0]) and scores[1] < scores[0]


def test_the_instruction_mean_reads_the_instruction_not_the_template(encoder):
    ids, start, end = encoder._prompt("Name a primary colour.")
    assert encoder.tokenizer.decode(ids[start:end]) == "Name a primary colour."
    long_one = "Please read this. " * 200 + "Then name a primary colour."
    ids, start, end = encoder._prompt(long_one)
    assert len(ids) == encoder.max_prompt_tokens and start == 0
    assert encoder.tokenizer.decode(ids[start:end]).endswith("Then name a primary colour.")
    assert encoder.instruction("Name a primary colour.").shape == (encoder.dim,)


def test_looping_answers_score_below_a_fluent_one(encoder):
    # The small policy's failure mode: the judged training answers never loop, so the head learned it from
    # constructed pairs. Before that, this emoji loop outscored every fluent answer in a Best-of-5.
    prompt = Prompt.of("Help me find a good rated electric saw.")
    fluent = ("To find a well-rated electric saw, read the reviews on a few hardware sites and compare brands such as "
              "DeWalt, Makita and Bosch on power, blade size and warranty.")
    loops = ["\U0001F331" + "\U0001F30D" * 60, "\n".join(["Step 1: Find a good rated electric saw."] * 12),
             "Here are some good electric saws: saws saws saws saws saws saws saws saws saws saws saws saws saws"]
    good, *bad = PreferenceReward(encoder=encoder).score(prompt, [fluent, *loops])
    assert good > max(bad), (good, bad)


def test_the_default_reward_with_context_leaves_no_openmp_workers_behind():
    """Its encoder, reader and embedder each run on the calling thread: after a score with context (all three),
    that thread holds no OpenMP worker that would make the engine's workers stop spinning (`modeling/threads.py`)."""
    from tests.unit.test_threads import run

    seen = run("""
        from darwin_chains import Prompt
        from darwin_chains.rewards import PreferenceReward
        reward = PreferenceReward()
        prompt = Prompt.of([
            {"role": "system", "content": "Context: the Amazon is 6,400 km long and crosses Brazil and Peru."},
            {"role": "user", "content": "How long is the Amazon?"}])
        score = lambda: reward.score(prompt, ["It is 6,400 km long.", "About 7,000 km, through Chile."])
        score()  # here first: models load, the tokenizers' own thread pools start, and stay
        base = count()
        after = on_a_thread(score)
        print(json.dumps({"base": base, "after": after, "read": reward.grounding.applies(prompt)}))
    """)
    assert seen["read"] and seen["after"] == seen["base"] + 1
