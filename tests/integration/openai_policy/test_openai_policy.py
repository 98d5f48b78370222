"""OpenAIPolicy against a real `transformers serve` (SmolLM2) through the real `openai` client.

Observed on this server: /v1/completions continues a client-side templated prompt; chat completions refuses
`continue_final_message` with a 422; `n` is accepted but answered with one choice; `seed` is honoured; log-probs
are not returned; sampling happens only when the request's generation config asks for it.
"""
from __future__ import annotations

import asyncio

import openai
import pytest

from darwin_chains import ConfigError, InputError, Prompt, Sampling, Search, SearchConfig
from darwin_chains.mutators import TemplateMutator
from darwin_chains.policies import chat_template
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.testing import KeywordReward
from darwin_chains.testing.contracts import PolicyContract

from .conftest import SAMPLING

INSTRUCTION = "Give three tips for writing a clear email."
SMALL = SearchConfig(mutants=2, keep_top=1, replacement_period=8, max_new_tokens=16, seed_sample=False, seed=0)

# A reasoning-style template: assistant turns are rendered with their <think> blocks removed.
REASONING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{{ m['content'].split('</think>')[-1].lstrip() }}"
    "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def completions_policy(served_smollm2, smollm2_dir):
    return OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, tokenizer=smollm2_dir, max_context=2048,
                                 extra_body=SAMPLING)


class TestOpenAIPolicyContract(PolicyContract):
    """The policy contract in completions mode: the real server continues partial responses."""

    @pytest.fixture
    def policy(self, completions_policy):
        return completions_policy


@pytest.fixture(scope="module")
def chat_policy(served_smollm2, smollm2_dir):
    """No tokenizer: the first use probes the server, which refuses chat continuation, so the policy settles on chat."""
    return OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, extra_body=SAMPLING)


class TestOpenAIPolicyChatContract(PolicyContract):
    """The policy contract in chat mode: whole responses, one request a beam."""

    @pytest.fixture
    def policy(self, chat_policy):
        return chat_policy


def test_completions_mode_runs_darwin_end_to_end(completions_policy):
    policy = completions_policy
    assert policy.mode == "completions" and policy.supports_continuation
    result = Search(policy, KeywordReward(["email", "subject"]), TemplateMutator(), SMALL).run(INSTRUCTION)
    trace = result.trace
    assert result.answer.strip() and trace.granularity == "token"
    assert trace.policy_requests == 4  # 2 beams x 2 periods of 8 tokens
    assert 0 < trace.tokens_generated <= 2 * 16 and trace.tokens_encoded > 50  # the server's usage counts
    assert len(trace.cycles[0].periods) >= 1 and trace.policy_retries == 0


async def test_async_path_continues_partial_responses(completions_policy):
    beams = completions_policy.start([Prompt.of(INSTRUCTION), Prompt.of("Name a colour.")], 16)
    usage = await completions_policy.aextend(beams, 4, Sampling(), seed=1)
    first = [b.response for b in beams]
    assert usage.requests == 2 and usage.output_tokens <= 8 and all(0 < b.tokens <= 4 for b in beams)
    await completions_policy.aextend(beams, 4, Sampling(), seed=2)
    assert all(b.response.startswith(f) for b, f in zip(beams, first))


def test_n_not_honoured_falls_back_to_one_request_per_beam(served_smollm2, smollm2_dir):
    policy = OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, tokenizer=smollm2_dir, extra_body=SAMPLING)
    beams = policy.start([Prompt.of("Name a colour.")] * 3, 8)
    usage = policy.extend(beams, 6, Sampling(), seed=5)
    assert all(b.response and b.tokens for b in beams)  # no beam lost
    assert usage.requests == 3  # one n=3 request answered with 1 choice, then 2 single ones
    assert any("n=3" in note for note in policy.notes)
    assert policy.extend(policy.start([Prompt.of("Hi")] * 2, 4), 4, Sampling(), seed=0).requests == 2


def test_seed_makes_replies_repeatable(completions_policy):
    texts = []
    for _ in range(2):
        beams = completions_policy.start([Prompt.of("Name a colour.")], 8)
        completions_policy.extend(beams, 6, Sampling(temperature=1.0, top_p=1.0), seed=42)
        texts.append(beams[0].response)
    assert texts[0] == texts[1]


def test_chat_mode_is_detected_and_runs_at_response_granularity(served_smollm2, smollm2_dir):
    policy = OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, extra_body=SAMPLING)
    assert policy.supports_continuation is False and policy.mode == "chat"
    assert any("422" in note for note in policy.notes)
    config = SMALL.replace(max_new_tokens=12)
    result = asyncio.run(Search(policy, KeywordReward(["email"]), TemplateMutator(), config).arun(INSTRUCTION))
    assert result.answer.strip() and result.trace.granularity == "response"
    assert any("response granularity" in note for note in result.trace.notes)
    assert any("continue_final_message" in note for note in result.trace.notes)
    assert result.trace.policy_requests == 2 and all(not c.periods for c in result.trace.cycles)


def test_template_that_rewrites_the_final_message_is_detected(smollm2_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert chat_template.rewrites(tokenizer) is None  # SmolLM2's ChatML keeps a partial answer verbatim
    assert "strips <think>" in chat_template.rewrites(tokenizer, REASONING_TEMPLATE)
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x")  # never called
    completions = OpenAIPolicy(client, "m", mode="completions", tokenizer=tokenizer, chat_template=REASONING_TEMPLATE)
    assert completions.mode == "completions" and "strips <think>" in completions.notes[0]
    beam = completions.start([Prompt.of("Why?")], 8)[0]
    beam.response = "<think>\nhm\n</think>\n\nBecause"
    _, kwargs = completions._request(completions._jobs([beam], 0)[0], 4, Sampling())
    assert kwargs["prompt"].endswith("<|im_start|>assistant\n<think>\nhm\n</think>\n\nBecause")  # appended raw
    refused = OpenAIPolicy(client, "m", mode="chat-continue", tokenizer=tokenizer, chat_template=REASONING_TEMPLATE)
    assert refused.supports_continuation is False and "refused" in refused.notes[0]


def test_prompt_longer_than_the_context_window_names_both_lengths(smollm2_dir):
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="x")
    policy = OpenAIPolicy(client, "m", mode="completions", tokenizer=smollm2_dir, max_context=64)
    with pytest.raises(InputError, match=r"prompt has \d+ tokens .* context window is 64"):
        policy.start([Prompt.of("cat " * 80)], 8)
    with pytest.raises(ConfigError):
        OpenAIPolicy(client, "m", mode="completions")


def test_health_says_whether_the_server_answers(completions_policy, smollm2_dir):
    from tests.integration.servers import free_port

    assert completions_policy.health() is None
    gone = OpenAIPolicy.from_url(str(smollm2_dir), f"http://127.0.0.1:{free_port()}/v1", tokenizer=smollm2_dir)
    problem = gone.health()
    assert problem and "could not be reached" in problem and gone.base_url in problem


def test_a_deadline_cuts_a_period_short_and_sends_nothing_after_it(proxy, smollm2_dir):
    """The proxy stalls the second request past the deadline: its beam keeps what it had, the first beam's period
    is whole, and no request goes out once the deadline has passed."""
    import time

    policy = OpenAIPolicy.from_url(str(smollm2_dir), proxy.url, tokenizer=smollm2_dir, extra_body=SAMPLING,
                                   max_concurrency=1)
    beams = policy.start([Prompt.of(INSTRUCTION), Prompt.of("Name a colour.")], 64)
    proxy.faults, proxy.stall = [None, "stall"], 30.0
    started = time.monotonic()
    usage = policy.extend(beams, 8, Sampling(), seed=0, deadline=started + 3.0)
    assert time.monotonic() - started < 10 and usage.requests == 1
    assert beams[0].tokens > 0 and beams[1].tokens == 0 and beams[1].response == ""
    sent = len(proxy.forwarded) + len(proxy.injected)
    assert policy.extend(beams, 8, Sampling(), seed=1, deadline=time.monotonic() - 1) == type(usage)()
    assert len(proxy.forwarded) + len(proxy.injected) == sent


def test_a_tiny_temperature_is_sent_as_greedy(proxy, smollm2_dir):
    """As the local sampler decodes greedily below a tiny temperature, the server is asked for temperature 0, not
    for a number whose logits overflow, and without top_p."""
    policy = OpenAIPolicy.from_url(str(smollm2_dir), proxy.url, tokenizer=smollm2_dir, extra_body=SAMPLING)
    beams = policy.start([Prompt.of(INSTRUCTION)], 16)
    policy.extend(beams, 4, Sampling(temperature=1e-300, top_p=1e-200), seed=0)
    (body,) = proxy.forwarded[-1:]
    assert body["temperature"] == 0 and "top_p" not in body and beams[0].tokens > 0
