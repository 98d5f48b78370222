"""`darwin-chains bench --concurrency` against a remote policy keeps the server busy.

The server is the real `transformers serve` with SmolLM2, reached through the fault proxy, which counts the POSTs in
flight. A delay at the proxy stands in for a slower, larger model, so the server's share of each request dominates
and any time the harness itself spends between requests shows up as idle server time. The reward is a keyword
count, not a model: a reward's own compute depends on the machine and its load, and is not the harness's.
"""
from __future__ import annotations

import asyncio

from darwin_chains import SearchConfig
from darwin_chains.cli.bench import Bench, BenchPrompt, read_rows
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.testing import KeywordReward

from .conftest import SAMPLING

#: Seconds the proxy holds each request: the stand-in for a larger model's time, far above the harness's own.
DELAY = 1.0


def test_concurrent_bench_keeps_the_server_busy(proxy, smollm2_dir, tmp_path):
    # completions mode, named: auto would first probe the server for tokens mode, one request with none beside it
    policy = OpenAIPolicy.from_url(str(smollm2_dir), proxy.url, tokenizer=smollm2_dir, max_context=2048,
                                   extra_body=SAMPLING, mode="completions")
    prompts = [BenchPrompt(f"p{i}", f"Name one use of {thing}.", "test")
               for i, thing in enumerate(["salt", "rope", "glass", "paper", "copper", "wool", "clay", "wax"])]
    config = SearchConfig(max_new_tokens=16, replacement_period=8)
    proxy.delay = DELAY
    bench = Bench(policy, KeywordReward(), None, {}, tmp_path / "out.jsonl", methods=["sample"], base=config)
    assert asyncio.run(bench.run(prompts, concurrency=4)) == len(prompts)
    peak, mean = proxy.load()
    assert peak == 4  # the cap is reached and never exceeded
    # Between a reply and the lane's next request the harness scores, records and starts the next period or prompt.
    # Every request outlasts DELAY, so 3.5 still allows each lane DELAY / 8 of idle time a request, over ten times
    # what it takes on a quiet machine; a harness that sent one request at a time would show about 1.
    assert mean > 3.5, f"only {mean:.2f} of 4 requests in flight on average: the harness is the bottleneck"
    rows = read_rows(bench.out)
    assert sorted(r["prompt_id"] for r in rows) == [p.id for p in prompts] and all(r["answer"] for r in rows)
