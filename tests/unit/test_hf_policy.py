"""The local Hugging Face policy on a tiny Llama built and saved in the test, loaded with from_pretrained."""
from __future__ import annotations

import pytest
import torch

from darwin_chains import ConfigError, HFPolicy, InputError, Prompt, Sampling
from darwin_chains.testing.contracts import PROMPTS, PolicyContract

GREEDY = Sampling(temperature=0)


class TestHFPolicyContract(PolicyContract):
    @pytest.fixture
    def policy(self, tiny_policy):
        return tiny_policy


def next_token_logits(policy: HFPolicy, ids: list[int]) -> torch.Tensor:
    """The reference: one full forward pass over the whole sequence, no cache."""
    with torch.inference_mode():
        return policy.model(torch.tensor([ids])).logits[0, -1]


def cached_next_token_logits(policy: HFPolicy, beam) -> torch.Tensor:
    """What the policy's cached state predicts next: feed the pending tokens on top of the beam's own cache."""
    from transformers import DynamicCache

    state = beam.state
    pending = state.ids[state.cached :]
    cache = DynamicCache(ddp_cache_data=[(k[None], v[None]) for k, v in state.cache]) if state.cache else None
    with torch.inference_mode():
        out = policy.model(torch.tensor([pending]), cache=cache,
                           position_ids=torch.arange(state.cached, state.cached + len(pending))[None])
    return out.logits[0, -1]


def test_cache_survives_periods_and_matches_a_full_forward(tiny_policy):
    beams = tiny_policy.start(PROMPTS, 64)
    for seed in range(3):
        tiny_policy.extend(beams, 5, Sampling(temperature=1.0), seed)
    for beam in beams:
        if beam.finished:
            continue
        assert beam.state.cached == len(beam.state.ids) - 1  # only the last sampled token is pending
        torch.testing.assert_close(cached_next_token_logits(tiny_policy, beam),
                                   next_token_logits(tiny_policy, beam.state.ids), atol=1e-4, rtol=1e-4)


def test_replaced_beam_keeps_its_prompt_cache_and_encodes_only_the_adopted_response(tiny_policy):
    beams = tiny_policy.start(PROMPTS, 64)
    tiny_policy.extend(beams, 6, Sampling(temperature=1.0), seed=0)
    own, donor = beams[1], beams[0]
    assert not own.finished and not donor.finished
    adopted = tiny_policy.adopt(own, donor)
    prompt_len = len(own.state.prompt_ids)
    assert adopted.state.cached == prompt_len  # the response part was dropped, the prompt cache kept
    for (k_new, _), (k_old, _) in zip(adopted.state.cache, own.state.cache):
        assert torch.equal(k_new, k_old[:, :prompt_len])
    usage = tiny_policy.extend([adopted], 1, GREEDY, seed=1)
    assert usage.input_tokens == len(donor.state.response_ids)  # encoded: the adopted tokens, nothing more
    assert adopted.state.ids[: prompt_len + len(donor.state.response_ids)] == [
        *own.state.prompt_ids, *donor.state.response_ids]
    torch.testing.assert_close(cached_next_token_logits(tiny_policy, adopted),
                               next_token_logits(tiny_policy, adopted.state.ids), atol=1e-4, rtol=1e-4)


def test_adopting_again_from_the_same_line_encodes_only_what_is_new(tiny_policy):
    """A beam that adopted a donor's response and is replaced by the same donor a period later keeps the cache of
    the start it already holds (its own prompt, the donor's earlier tokens) and encodes only the donor's new ones."""
    beams = tiny_policy.start(PROMPTS[:2], 64)
    tiny_policy.extend(beams, 6, Sampling(temperature=1.0), seed=0)
    own, donor = beams[1], beams[0]
    own = tiny_policy.adopt(own, donor)
    tiny_policy.extend([own, donor], 5, Sampling(temperature=1.0), seed=1)  # both go on from the same 6 tokens
    assert not own.finished and not donor.finished
    assert own.state.response_ids[:6] == donor.state.response_ids[:6] != own.state.response_ids
    shared = next(i for i, (a, b) in enumerate(zip(own.state.response_ids, donor.state.response_ids)) if a != b)
    again = tiny_policy.adopt(own, donor)
    assert again.state.cached == len(own.state.prompt_ids) + shared
    usage = tiny_policy.extend([again], 1, GREEDY, seed=2)
    assert usage.input_tokens == len(donor.state.response_ids) - shared
    torch.testing.assert_close(cached_next_token_logits(tiny_policy, again),
                               next_token_logits(tiny_policy, again.state.ids), atol=1e-4, rtol=1e-4)


def test_adopting_from_the_same_prompt_shares_the_cache(tiny_policy):
    beams = tiny_policy.start([PROMPTS[0], PROMPTS[0]], 64)
    tiny_policy.extend(beams, 4, Sampling(temperature=1.0), seed=0)
    adopted = tiny_policy.adopt(beams[1], beams[0])
    assert adopted.state.cache is beams[0].state.cache
    usage = tiny_policy.extend([adopted], 1, GREEDY, seed=0)
    assert usage.input_tokens == 0


@pytest.mark.cpu_kernels
def test_ragged_batch_decodes_like_each_beam_alone(tiny_policy):
    """Left padding and holes in the mask must not change what any beam decodes (greedy)."""
    prompts = [Prompt.of("Hi"), Prompt.of("Give three tips for writing a clear email, please, today.")]
    together = tiny_policy.start(prompts, 64)
    tiny_policy.extend(together, 4, GREEDY, 0)
    together[0] = tiny_policy.adopt(together[0], together[1])  # now the rows differ in pending length
    tiny_policy.extend(together, 5, GREEDY, 0)
    assert not any(b.finished for b in together)
    for beam in together:
        response = beam.state.response_ids
        alone_ids = [*beam.state.prompt_ids, *response[: len(response) - 5]]
        with torch.inference_mode():
            out = tiny_policy.model.generate(torch.tensor([alone_ids]), max_new_tokens=5, do_sample=False,
                                             pad_token_id=tiny_policy.pad_id)
        assert out[0, len(alone_ids):].tolist() == response[len(response) - 5 :]


def test_same_seed_same_tokens_and_different_seed_differs(tiny_policy):
    def run(seed):
        beams = tiny_policy.start(PROMPTS, 64)
        tiny_policy.extend(beams, 12, Sampling(temperature=1.0), seed)
        return [b.state.response_ids for b in beams]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_eos_finishes_a_beam_and_is_not_part_of_the_response(tiny_llama):
    policy = HFPolicy.from_pretrained(tiny_llama, device="cpu")
    eos = next(iter(policy.eos_ids))
    with torch.no_grad():  # make EOS the only likely token
        policy.model.lm_head.weight.zero_()
        policy.model.lm_head.weight[eos] = 1.0
        policy.model.model.norm.weight.fill_(50.0)
    beams = policy.start(PROMPTS, 64)
    usage = policy.extend(beams, 10, GREEDY, 0)
    assert all(b.finished and b.tokens == 0 and b.response == "" for b in beams)
    assert usage.output_tokens == 2  # one EOS each, then the rows are dropped


def test_prompt_too_long_for_context_window(tiny_policy):
    with pytest.raises(InputError, match=r"prompt has [\d,]+ tokens .* context window is 512 tokens"):
        tiny_policy.start([Prompt.of("cat " * 600)], 16)
    with pytest.raises(InputError, match="lower max_new_tokens"):
        tiny_policy.start([Prompt.of("cat")], 600)


def test_tokenizer_without_chat_template_is_refused(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="chat template"):
        HFPolicy(AutoModelForCausalLM.from_pretrained(tiny_llama), tokenizer)


def test_device_and_dtype_defaults(tiny_policy):
    from darwin_chains.devices import default_dtype

    assert tiny_policy.device.type == "cpu" and tiny_policy.model.dtype == torch.float32
    assert default_dtype("mps") == torch.float16
    assert default_dtype("cpu") == torch.float32


@pytest.mark.parametrize("sampling", [Sampling(0.7, 0, 0.9), Sampling(1.0, 20, 0.8), Sampling(1.3, 0, 1.0),
                                      Sampling(1.0, 5, 1.0)])
@pytest.mark.parametrize("shortlist", [8, 256, 1024])  # 8 forces the whole-vocabulary fallback on flat rows
def test_sampler_matches_transformers_warpers(sampling, shortlist):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from darwin_chains.policies.sampling import sample

    torch.manual_seed(0)
    logits = torch.stack([torch.randn(300) * 4, torch.randn(300) * 0.3])  # one peaked row, one flat row
    reference = TemperatureLogitsWarper(sampling.temperature)(None, logits.clone())
    if sampling.top_k:
        reference = TopKLogitsWarper(sampling.top_k)(None, reference)
    if sampling.top_p < 1:
        reference = TopPLogitsWarper(sampling.top_p)(None, reference)
    expected = torch.softmax(reference, -1)
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([sample(logits, sampling, [generator] * 2, shortlist) for _ in range(4000)])
    for row in range(2):
        counts = torch.bincount(draws[:, row], minlength=300).float() / len(draws)
        assert set(counts.nonzero().squeeze(-1).tolist()) <= set(expected[row].nonzero().squeeze(-1).tolist())
        assert (counts - expected[row]).abs().max() < 0.03


@pytest.mark.parametrize("sampling", [Sampling(0.7, 0, 0.9), Sampling(1.0, 40, 1.0), Sampling(1.0, 0, 1.0)])
def test_a_rows_draw_is_the_same_alone_and_sampled_with_other_rows(sampling):
    """The engine samples the rows that share settings in one call; each row still draws with its own generator,
    so its tokens never depend on the rows beside it (with a shortlist of 8, flat rows take the fallback)."""
    from darwin_chains.policies.sampling import sample

    torch.manual_seed(1)
    logits = torch.cat([torch.randn(3, 500) * 4, torch.randn(3, 500) * 0.2])
    for shortlist in (8, 1024):
        alone = [int(sample(logits[r : r + 1], sampling, [torch.Generator().manual_seed(r)], shortlist)[0])
                 for r in range(6)]
        together = sample(logits, sampling, [torch.Generator().manual_seed(r) for r in range(6)], shortlist)
        assert together.tolist() == alone


@pytest.mark.parametrize("sampling", [Sampling(1e-300), Sampling(5e-324), Sampling(9e-6), Sampling(1.0, 0, 1e-200),
                                      Sampling(1.0, 0, 5e-324), Sampling(1.0, 3, 1e-300), Sampling(1e-300, 0, 1e-300)])
def test_a_tiny_temperature_or_top_p_decodes_greedily_instead_of_drawing_from_nan(tiny_policy, sampling):
    """Logits over a temperature of 1e-300 are inf in float32, and a top_p of 1e-200 is 0 there: both once
    failed the draw ("probability tensor contains inf, nan ...")."""
    def run(sampling):
        beams = tiny_policy.start(PROMPTS, 64)
        tiny_policy.extend(beams, 6, sampling, seed=0)
        return [b.state.response_ids for b in beams]

    assert run(sampling) == run(GREEDY)


@pytest.mark.parametrize("sampling", [Sampling(1e308), Sampling(1.7976931348623157e308, 5, 1e-300),
                                      Sampling(1e-5, 0, 1.0), Sampling(1.0, 2 ** 63 - 1, 0.5)])
def test_numbers_at_the_float_limits_still_draw_a_token(sampling):
    from darwin_chains.policies.sampling import sample

    logits = torch.stack([torch.randn(300) * 30, torch.full((300,), -3e38), torch.zeros(300)])
    for shortlist in (8, 1024):
        draws = sample(logits, sampling, [torch.Generator().manual_seed(0)] * 3, shortlist)
        assert draws.shape == (3,) and bool(((draws >= 0) & (draws < 300)).all())


@pytest.mark.parametrize("method", ["darwin", "best-of-n", "sample", "mutation-best-of-n", "sample-replace"])
def test_every_method_runs_on_a_real_model(tiny_policy, method):
    from darwin_chains import Search, SearchConfig, TemplateMutator
    from darwin_chains.testing import KeywordReward

    config = SearchConfig(method=method, max_new_tokens=24, replacement_period=6, look_ahead=3, seed=1,
                          mutation_cycles=2)
    search = Search(tiny_policy, KeywordReward(["the", "cat"]), TemplateMutator(), config)
    first, second = search.run(PROMPTS[0]), search.run(PROMPTS[0])
    assert first.answer == second.answer and first.reward == second.reward
    trace = first.trace
    assert trace.tokens_generated > 0 and trace.reward_calls > 0
    if config.replaces:  # look-ahead probes only matter where replacement ranks beams
        assert trace.look_ahead_tokens > 0
        assert any(p.replacements for c in trace.cycles for p in c.periods)
    longest = max(len(c.responses) for c in trace.cycles)
    assert longest == (1 if method == "sample" else 5)
