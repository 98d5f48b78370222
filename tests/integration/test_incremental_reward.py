"""The reward reads only what is new (`ResponseEncoder.means`): bitwise the same features as from scratch, alone or
beside concurrent searches, for a cost in tokens that grows with the period, not with the response."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from darwin_chains import Prompt
from darwin_chains.rewards import PreferenceReward
from darwin_chains.rewards.blocks import BlockCache
from darwin_chains.rewards.hidden_states import ResponseEncoder
from tests.coalescing import queue_behind

EMAIL = "Give three tips for writing a clear email."
TEXT = ("Use a clear subject line that says what the email is about. Keep paragraphs short, put the main request "
        "first, and say what you need by when. Proofread it once before sending, reading it as the recipient would. ")


@pytest.fixture(scope="module")
def encoder(smollm2_dir):
    return ResponseEncoder(smollm2_dir)


@pytest.fixture(scope="module")
def ids(encoder):
    return encoder.tokenizer(TEXT * 3, add_special_tokens=False)["input_ids"]


def prefix(encoder, ids, n: int) -> str:
    text = encoder.tokenizer.decode(ids[:n])
    assert encoder.tokenizer(text, add_special_tokens=False)["input_ids"] == ids[:n]  # the cut text reads as cut
    return text


def from_scratch(encoder, items) -> np.ndarray:
    encoder.blocks.clear()
    return encoder.means(items)


def test_a_growing_response_reads_as_from_scratch_bitwise_and_reads_only_its_new_tokens(encoder, ids):
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
        assert np.array_equal(features, from_scratch(encoder, [(EMAIL, prefix(encoder, ids, n))])[0])
    full = encoder.encode([(EMAIL, prefix(encoder, ids, 120))])[0]  # one full pass: the same up to rounding
    np.testing.assert_allclose(read[-1], full, rtol=0, atol=1e-5 * np.abs(full).max())


def test_a_period_of_five_beams_reads_five_times_m_tokens_at_any_length(encoder, ids):
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


def test_cut_means_equal_the_cut_responses_features(encoder, ids):
    text = prefix(encoder, ids, 100)
    encoder.blocks.clear()
    cuts = encoder.means([(EMAIL, text)], cuts=(40, 80, 256))[0]
    assert np.array_equal(cuts[0], from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 40))])[0])
    assert np.array_equal(cuts[1], from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 80))])[0])
    assert np.array_equal(cuts[2], from_scratch(encoder, [(EMAIL, text)])[0])
    with pytest.raises(ValueError):
        encoder.means([(EMAIL, text)], cuts=(41,))


def test_concurrent_searches_share_one_pass_and_get_their_own_features_bitwise(encoder, ids):
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
        assert np.array_equal(results[i], expected)


def test_a_one_token_response_reads_the_same_alone_and_beside_long_ones(encoder, ids):
    alone = from_scratch(encoder, [(EMAIL, "7")])  # fewer tokens than the matmuls need: padded with empty rows
    assert len(encoder.tokenizer("7", add_special_tokens=False)["input_ids"]) == 1
    beside = from_scratch(encoder, [(EMAIL, prefix(encoder, ids, 70)), ("Name a prime.", "7"), (EMAIL, "7")])
    assert np.array_equal(beside[2], alone[0]) and not np.array_equal(beside[1], alone[0])


def test_a_pass_split_into_groups_of_rows_reads_the_same(encoder, ids):
    items = [(EMAIL, prefix(encoder, ids, n)) for n in (12, 50, 81)]
    whole = from_scratch(encoder, items)
    groups, read_prompts = [], encoder._read_prompts
    encoder._read_prompts = lambda reads: (groups.append(len(reads)), read_prompts(reads))[1]
    encoder.max_rows = 2
    try:
        assert np.array_equal(from_scratch(encoder, items), whole)
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
        assert np.array_equal(got, expected)
    finally:
        encoder.blocks = kept


def test_preference_reward_scores_through_the_incremental_path(encoder, ids):
    reward = PreferenceReward(encoder=encoder)
    prompt, text = Prompt.of(EMAIL), prefix(encoder, ids, 85)
    encoder.blocks.clear()
    first = reward.score(prompt, [text, ""])
    before = encoder.tokens_encoded
    assert reward.score(prompt, [text, ""]) == first
    assert encoder.tokens_encoded - before == 85 % encoder.block_tokens  # only the last partial block again
