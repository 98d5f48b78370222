"""The reward reads only what is new (`ResponseEncoder.means`): the same features as from scratch, alone or beside
concurrent searches, for a cost in tokens that grows with the period, not with the response.

Every claim about the numbers runs in both dtypes the encoder can run in, whatever the host CPU: bitwise in fp32
(the default), within a bound in bf16 (emulated, and slow, on CPUs without native bf16). In bf16 a row's numbers
depend on the shape of the call that computed them on some CPUs, and how features are read moves them: over the
1,759 validation answers of benchmarks/reward/ (AVX512-BF16), block reads differ from one full pass by up to 0.9%
of a row's largest value (median 0.09%) and the head's score by up to 0.037 (median 0.004); on an AMX CPU a
search's reported reward differed from its rescore by 0.0015.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from darwin_chains import Prompt
from darwin_chains.rewards import PreferenceReward
from darwin_chains.rewards.blocks import BlockCache
from darwin_chains.rewards.hidden_states import ResponseEncoder
from tests.support.coalescing import queue_behind

EMAIL = "Give three tips for writing a clear email."
TEXT = ("Use a clear subject line that says what the email is about. Keep paragraphs short, put the main request "
        "first, and say what you need by when. Proofread it once before sending, reading it as the recipient would. ")


BF16_TOLERANCE = 2e-2  # of a row's largest value: twice the largest bf16 drift measured between read orders
BF16_SCORE_TOLERANCE = 5e-2  # of the head's score (standard deviation about 1.1 over the validation answers)
pytestmark = pytest.mark.cpu_kernels


@pytest.fixture(scope="module")
def encoders(smollm2_dir):
    """One encoder per dtype, built when first asked for."""
    built = {}

    def get(dtype: str) -> ResponseEncoder:
        if dtype not in built:
            built[dtype] = ResponseEncoder(smollm2_dir, dtype=dtype)
        return built[dtype]

    return get


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def encoder(request, encoders):
    """The encoder in each dtype the library can run it in: the claims below hold in both."""
    return encoders(request.param)


@pytest.fixture(scope="module")
def fp32_encoder(encoders):
    """For claims about what is read, not about the numbers: the same in every dtype."""
    return encoders("fp32")


@pytest.fixture(scope="module")
def ids(encoders):
    return encoders("fp32").tokenizer(TEXT * 3, add_special_tokens=False)["input_ids"]


def same(actual, expected, encoder) -> bool:
    """Bitwise in fp32; within BF16_TOLERANCE of the largest value in bf16."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if encoder.dtype == encoder.torch.float32:
        return np.array_equal(actual, expected)
    return actual.shape == expected.shape and bool(
        np.abs(actual - expected).max() <= BF16_TOLERANCE * np.abs(expected).max())


def prefix(encoder, ids, n: int) -> str:
    text = encoder.tokenizer.decode(ids[:n])
    assert encoder.tokenizer(text, add_special_tokens=False)["input_ids"] == ids[:n]  # the cut text reads as cut
    return text


def from_scratch(encoder, items) -> np.ndarray:
    encoder.blocks.clear()
    return encoder.means(items)


def test_a_growing_response_reads_as_from_scratch_and_reads_only_its_new_tokens(encoder, ids):
    encoder.blocks.clear()
    read, done = [], 0
    for n in (5, 13, 40, 83, 120):  # partial blocks, whole blocks, a period of 43 tokens
        before = encoder.tokens_encoded
        read.append(encoder.means([(EMAIL, prefix(encoder, ids, n))])[0])
        new = encoder.tokens_encoded - before
        if done:  # the last partial block again (done % block_tokens) and what is new
            assert new == n - done + done % encoder.block_tokens
        done = n
    for n, features in zip((5, 13, 40, 83, 120), read):
        assert same(features, from_scratch(encoder, [(EMAIL, prefix(encoder, ids, n))])[0], encoder)
    full = encoder.encode([(EMAIL, prefix(encoder, ids, 120))])[0]  # one full pass: the same up to rounding
    rounding = 1e-5 if encoder.dtype == encoder.torch.float32 else BF16_TOLERANCE
    np.testing.assert_allclose(read[-1], full, rtol=0, atol=rounding * np.abs(full).max())


def test_a_period_of_five_beams_reads_five_times_m_tokens_at_any_length(fp32_encoder, ids):
    encoder = fp32_encoder
    encoder.blocks.clear()
    tokenize = encoder.tokenizer
    beams = [tokenize(f"Tip {i}: {TEXT * 5}", add_special_tokens=False)["input_ids"] for i in range(5)]
    spent = []
    for n in (40, 80, 120, 160):
        before = encoder.tokens_encoded
        encoder.means([(EMAIL, prefix(encoder, beam, n)) for beam in beams])
        spent.append(encoder.tokens_encoded - before)
    assert spent[1:] == [5 * 40] * 3  # not 5 x 80, 120, 160: block ends fall on period ends, nothing read twice
    assert spent[0] > 5 * 40  # the first period reads the prompt too


def test_in_fp32_on_cpu_its_passes_take_packed_weights_and_in_bf16_the_usual_ones(encoder, ids):
    """The bitwise claims above then hold over oneDNN's packed products (`modeling/products.py`) in fp32."""
    from darwin_chains.modeling import products

    encoder.blocks.clear()
    encoder.means([(EMAIL, prefix(encoder, ids, 83))])
    packed = [isinstance(vars(m).get("_packed"), tuple) for m in encoder.model.modules()
              if isinstance(m, encoder.torch.nn.Linear)]
    expected = encoder.dtype == encoder.torch.float32 and products.available()
    assert packed and all(p == expected for p in packed)


def test_cut_means_equal_the_cut_responses_features(encoder, ids):
    text = prefix(encoder, ids, 100)
    encoder.blocks.clear()
    cuts = encoder.means([(EMAIL, text)], cuts=(40, 80, 256))[0]
    assert same(cuts[0], from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 40))])[0], encoder)
    assert same(cuts[1], from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 80))])[0], encoder)
    assert same(cuts[2], from_scratch(encoder, [(EMAIL, text)])[0], encoder)
    with pytest.raises(ValueError):
        encoder.means([(EMAIL, text)], cuts=(41,))


def test_concurrent_searches_share_one_pass_and_get_their_own_features(encoder, ids):
    searches = [(EMAIL, [prefix(encoder, ids, 30), prefix(encoder, ids, 17)]),
                ("How do I bake a cake?", ["Preheat the oven.", "Mix flour, sugar and eggs."]),
                ("Name a prime number.", ["7 is prime."])]
    alone = [from_scratch(encoder, [(instruction, r) for r in responses]) for instruction, responses in searches]
    encoder.blocks.clear()
    coalescer, results = encoder._coalescer, {}
    passes, calls = encoder.passes, coalescer.calls

    def search(i):
        instruction, responses = searches[i]
        results[i] = encoder.means([(instruction, r) for r in responses])

    threads = [threading.Thread(target=search, args=(i,)) for i in range(3)]
    queue_behind(encoder._lock, coalescer, threads)  # the first search's pass waits while the other two queue
    for t in threads:
        t.join(30)
    assert encoder.passes - passes == 2 and coalescer.calls - calls == 3
    for i, expected in enumerate(alone):
        assert same(results[i], expected, encoder)


def test_a_one_token_response_reads_the_same_alone_and_beside_long_ones(encoder, ids):
    alone = from_scratch(encoder, [(EMAIL, "7")])  # fewer tokens than the matmuls need: padded with empty rows
    assert len(encoder.tokenizer("7", add_special_tokens=False)["input_ids"]) == 1
    beside = from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 70)), ("Name a prime.", "7"), (EMAIL, "7")])
    assert same(beside[2], alone[0], encoder) and not same(beside[1], alone[0], encoder)


def test_a_pass_split_into_groups_of_rows_reads_the_same(encoder, ids):
    items = [(EMAIL, prefix(encoder, ids, n)) for n in (12, 50, 81)]
    whole = from_scratch(encoder, items)
    groups, read_prompts = [], encoder._read_prompts
    encoder._read_prompts = lambda reads: (groups.append(len(reads)), read_prompts(reads))[1]
    encoder.max_rows = 2
    try:
        assert same(from_scratch(encoder, items), whole, encoder)
    finally:
        encoder.max_rows = 64
        del encoder._read_prompts
    assert groups == [2, 1]


def test_the_cache_stays_within_its_bound_and_eviction_changes_nothing(encoder, ids):
    expected = from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 90))])
    kept = encoder.blocks
    encoder.blocks = BlockCache(max_tokens=64)  # less than prompt and response
    try:
        for n in (30, 60, 90):
            got = encoder.means([(EMAIL, prefix(encoder, ids, n))])
            assert encoder.blocks.tokens <= 64
        assert same(got, expected, encoder)
    finally:
        encoder.blocks = kept


def test_preference_reward_scores_through_the_incremental_path(encoder, ids):
    reward = PreferenceReward(encoder=encoder)
    prompt, text = Prompt.of(EMAIL), prefix(encoder, ids, 85)
    encoder.blocks.clear()
    first = reward.score(prompt, [text, ""])
    before = encoder.tokens_encoded
    again = reward.score(prompt, [text, ""])
    assert again == first if encoder.dtype == encoder.torch.float32 else again == pytest.approx(
        first, abs=BF16_SCORE_TOLERANCE)
    assert encoder.tokens_encoded - before == 85 % encoder.block_tokens  # only the last partial block again


def test_the_reward_a_search_reports_is_the_reward_of_its_answer_scored_again(encoder, encoders, smollm2_policy):
    """Scored again by the same reward (its cache warm) and by a fresh one (nothing cached): exactly in fp32, within
    BF16_SCORE_TOLERANCE in bf16, where the search's passes and the rescore's have other shapes."""
    from darwin_chains import Search, SearchConfig, TemplateMutator

    config = SearchConfig(max_new_tokens=48, replacement_period=8, mutants=3, keep_top=1, seed=3)
    result = Search(smollm2_policy, PreferenceReward(encoder=encoder), TemplateMutator(), config).run(EMAIL)
    assert result.answer.strip() and len(result.trace.cycles[0].periods) >= 3
    warm = PreferenceReward(encoder=encoder).score(Prompt.of(EMAIL), [result.answer])[0]
    cold = PreferenceReward(encoder=ResponseEncoder(encoder.path, dtype=encoder.dtype)).score(Prompt.of(EMAIL),
                                                                                              [result.answer])[0]
    if encoder.dtype == encoder.torch.float32:
        assert result.reward == warm == cold
    else:
        assert result.reward == pytest.approx(warm, abs=BF16_SCORE_TOLERANCE)
        assert result.reward == pytest.approx(cold, abs=BF16_SCORE_TOLERANCE)


def test_with_context_the_reported_reward_is_a_rescore_within_1e_5(fp32_encoder, smollm2_policy):
    """The groundedness term embeds answer sentences with MiniLM, whose padded batches round a row's last bits
    differently (about 1e-7): equal to 1e-5, not bitwise."""
    from darwin_chains import Search, SearchConfig, TemplateMutator

    prompt = Prompt.of([{"role": "system", "content": "Context: The Zelbrook library opens at 7:30 AM on weekdays."},
                        {"role": "user", "content": "When does the library open on weekdays?"}])
    config = SearchConfig(max_new_tokens=24, replacement_period=8, mutants=3, keep_top=1, seed=1)
    reward = PreferenceReward(encoder=fp32_encoder)
    result = Search(smollm2_policy, reward, TemplateMutator(), config).run(prompt)
    assert reward.grounding.applies(prompt) and result.answer.strip()
    fresh = PreferenceReward(encoder=ResponseEncoder(fp32_encoder.path))  # nothing cached: no blocks, no sentences
    assert result.reward == pytest.approx(fresh.score(prompt, [result.answer])[0], abs=1e-5)
