"""Darwin on a real serving engine: vLLM as the policy, as the reward, and two replicas behind a router.

    python benchmarks/serving/serving.py                      # every section -> runs/<cpu capability>.json
    python benchmarks/serving/serving.py --sections reward --out /tmp/serving.json

Needs vLLM's CPU build in .vllm-venv (`make vllm`) and, for scale-out, nginx (Debian's `nginx`). Run it alone on
the machine: it times things. Every vLLM server runs with one thread (benchmarks/serving/servers.py). Sections:

- `concurrency`: 8 seeded Darwin searches (5 beams, m = 40, top-3, 128 new tokens, the default reward and the
  template mutator), one after another and all at once, with the policy on vLLM (tokens mode; the reward in this
  process, 1 thread) and on the local engine (2 threads: the same two cores), in one run.
- `reward`: pairs scored per second by a reward model on vLLM's `/classify` (ServedRewardModel) and in this
  process (HFRewardModel, 1 thread), at 1, 8 and 64 pairs per call. The model is SmolLM2-135M's weights with a
  score head of random weights (no reward model ships offline): the compute of a real 135M reward model.
- `scale-out`: two vLLM replicas of the policy behind nginx on loopback, once hashing each request's
  X-Session-ID (every search sends one key on all its requests) and once round-robin. Per search, how many
  replicas its requests reached (from each replica's /metrics), and the prefix-cache hit rate of each leg. The
  searches answer from long contexts of their own, as a RAG pipeline's would, and each leg has its own contexts,
  so neither finds the other's prefixes cached.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"

from benchmarks.serving import servers  # noqa: E402 - from the repository root
from benchmarks.speed.speed import add_data_dir, load_prompts  # noqa: E402

SECTIONS = ("concurrency", "reward", "scale-out")


def config():
    from darwin_chains import SearchConfig

    return SearchConfig(mutants=5, replacement_period=40, keep_top=3, mutation_cycles=1, max_new_tokens=128)


def searches(policy, reward, prompts: list) -> dict:
    """The prompts' seeded searches one after another, then all at once: walls, tokens and answers."""
    from darwin_chains import Search, TemplateMutator

    search = Search(policy, reward, TemplateMutator(), config())
    search.run("Say hello.", max_new_tokens=8)  # warm-up: lazy loading, first requests
    start = time.perf_counter()
    sequential = [search.run(p, seed=i) for i, p in enumerate(prompts)]
    sequential_wall = time.perf_counter() - start

    async def together():
        return await asyncio.gather(*(search.arun(p, seed=i) for i, p in enumerate(prompts)))

    start = time.perf_counter()
    concurrent = asyncio.run(together())
    concurrent_wall = time.perf_counter() - start
    tokens = sum(r.trace.tokens_generated for r in concurrent)
    return {"sequential_seconds": sequential_wall, "concurrent_seconds": concurrent_wall,
            "wall_ratio_concurrent_over_sequential": concurrent_wall / sequential_wall,
            "concurrent_tokens_per_second": tokens / concurrent_wall,
            "answers_equal": sum(a.answer == b.answer for a, b in zip(sequential, concurrent)),
            "granularity": sorted({r.trace.granularity for r in concurrent}),
            "notes": sorted({n for r in concurrent for n in r.trace.notes})}


def concurrency(args, folder: Path) -> dict:
    import torch

    from darwin_chains import defaults
    from darwin_chains.embedded import smollm2_dir

    prompts = load_prompts(args.searches, args.data_dir)
    port = servers.free_port()
    log = folder / "policy.log"
    process = servers.launch(smollm2_dir(), "smollm2", port, log, "--enable-prompt-tokens-details")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        servers.wait_ready(url, process, log)
        reward = defaults.reward()
        torch.set_num_threads(1)  # the server has the other core
        queries, hits = (servers.metric(url, f"vllm:prefix_cache_{k}_total") for k in ("queries", "hits"))
        remote = searches(defaults.policy(f"openai:smollm2@{url}"), reward, prompts)
        queried = servers.metric(url, "vllm:prefix_cache_queries_total") - queries
        remote["prefix_cache_hit_rate"] = (servers.metric(url, "vllm:prefix_cache_hits_total") - hits) / queried
        print(f"vLLM: {json.dumps(remote)}", file=sys.stderr)
    finally:
        servers.stop(process)
    torch.set_num_threads(2)  # the local engine, policy and reward, on both cores
    local = searches(defaults.policy("embedded"), defaults.reward(), prompts)
    print(f"local: {json.dumps(local)}", file=sys.stderr)
    return {"searches": len(prompts), "vllm": remote, "local": local,
            "targets": {"vllm wall_ratio_concurrent_over_sequential": "<= 0.55"}}


def reward_model(folder: Path) -> Path:
    """SmolLM2-135M's weights under a random one-score head, saved with its tokenizer and chat template."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from darwin_chains.embedded import smollm2_dir

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(smollm2_dir(), num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    model.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 2
    path = folder / "reward-model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reward(args, folder: Path) -> dict:
    import torch

    from darwin_chains import Prompt
    from darwin_chains.rewards.hf import HFRewardModel
    from darwin_chains.rewards.served import ServedRewardModel

    torch.set_num_threads(1)
    path = reward_model(folder)
    prompts = load_prompts(8, args.data_dir)
    prompt = Prompt.of(prompts[0])
    # Responses of about 100 tokens, all different: what a period's scoring sends.
    responses = [f"{i}. " + " ".join(prompts[(i + k) % len(prompts)] for k in range(2))[:500] for i in range(64)]
    port = servers.free_port()
    log = folder / "reward.log"
    process = servers.launch(path, "rm", port, log, "--runner", "pooling")
    rows = {}
    try:
        url = f"http://127.0.0.1:{port}/v1"
        servers.wait_ready(url, process, log)
        served = ServedRewardModel("rm", url, tokenizer=path, batch_size=64)
        local = HFRewardModel.from_pretrained(path, device="cpu", dtype=torch.float32, batch_size=64)
        agreement = max(abs(a - b) for a, b in zip(served.score(prompt, responses), local.score(prompt, responses)))
        for per_call in (1, 8, 64):
            calls = [responses[i : i + per_call] for i in range(0, 64, per_call)] * 2  # 128 pairs in all
            row = {}
            for name, model in (("vllm", served), ("in_process", local)):
                model.score(prompt, calls[0])  # warm-up
                start = time.perf_counter()
                pairs = sum(len(model.score(prompt, c)) for c in calls)
                row[f"{name}_pairs_per_second"] = pairs / (time.perf_counter() - start)
            row["ratio_vllm_over_in_process"] = row["vllm_pairs_per_second"] / row["in_process_pairs_per_second"]
            rows[str(per_call)] = row
            print(f"reward, {per_call} per call: {json.dumps(row)}", file=sys.stderr)
    finally:
        servers.stop(process)
    return {"pairs_per_call": rows, "max_abs_score_difference": agreement, "model": "SmolLM2-135M + random head"}


NGINX = """daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    upstream by_session {{ hash $http_x_session_id consistent; server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}
    upstream round_robin {{ server 127.0.0.1:{a}; server 127.0.0.1:{b}; }}
    server {{ listen 127.0.0.1:{hashed}; location / {{ proxy_pass http://by_session; proxy_read_timeout 300s; }} }}
    server {{ listen 127.0.0.1:{rr}; location / {{ proxy_pass http://round_robin; proxy_read_timeout 300s; }} }}
}}
"""


def contexts(n: int, salt: str) -> list[str]:
    """Long documents of their own for each search (about 600 tokens), so a search's prefix is its own."""
    return [" ".join(f"{salt} record {d}.{i}: the depot in district {i} ships {3 + (i * d) % 7} crates on day "
                     f"{1 + (i + d) % 28} and closes at {5 + i % 4} PM." for i in range(30)) for d in range(n)]


def scale_out(args, folder: Path) -> dict:
    import torch

    from darwin_chains import Prompt, Search, SearchConfig, TemplateMutator, defaults
    from darwin_chains.embedded import smollm2_dir
    from darwin_chains.testing import KeywordReward

    if shutil.which("nginx") is None:
        raise SystemExit("scale-out needs nginx: apt-get install nginx")
    torch.set_num_threads(1)
    ports = [servers.free_port() for _ in range(4)]
    replicas = [servers.launch(smollm2_dir(), "smollm2", p, folder / f"replica-{i}.log",
                               "--enable-prompt-tokens-details") for i, p in enumerate(ports[:2])]
    urls = [f"http://127.0.0.1:{p}/v1" for p in ports[:2]]
    conf = folder / "nginx.conf"
    conf.write_text(NGINX.format(folder=folder, a=ports[0], b=ports[1], hashed=ports[2], rr=ports[3]))
    router = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(folder)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    legs = {}
    try:
        for process, url, i in zip(replicas, urls, range(2)):
            servers.wait_ready(url, process, folder / f"replica-{i}.log")
        small = SearchConfig(mutants=4, keep_top=2, replacement_period=16, max_new_tokens=64)
        for leg, port in (("session_key", ports[2]), ("round_robin", ports[3])):
            policy = defaults.policy(f"openai:smollm2@http://127.0.0.1:{port}/v1")
            search = Search(policy, KeywordReward(["PM", "crates"]), TemplateMutator(), small)
            before = {k: [servers.metric(u, f"vllm:prefix_cache_{k}_total") for u in urls] for k in ("queries", "hits")}
            reached = []
            for s, context in enumerate(contexts(args.scale_out_searches, leg)):
                counts = [servers.metric(u, "vllm:prompt_tokens_total") for u in urls]
                prompt = Prompt.of([{"role": "system", "content": context},
                                    {"role": "user", "content": f"When does district {s + 2} close?"}])
                search.run(prompt, seed=s)
                reached.append(sum(servers.metric(u, "vllm:prompt_tokens_total") > c for u, c in zip(urls, counts)))
            after = {k: [servers.metric(u, f"vllm:prefix_cache_{k}_total") for u in urls] for k in ("queries", "hits")}
            queried = sum(after["queries"]) - sum(before["queries"])
            legs[leg] = {"searches": len(reached), "replicas_reached_per_search": reached,
                         "searches_on_one_replica": sum(r == 1 for r in reached),
                         "prefix_cache_hit_rate": (sum(after["hits"]) - sum(before["hits"])) / queried,
                         "prompt_tokens_queried": queried}
            print(f"{leg}: {json.dumps(legs[leg])}", file=sys.stderr)
    finally:
        router.terminate()
        router.wait(10)
        for process in replicas:
            servers.stop(process)
    return {"replicas": 2, "router": "nginx " + _nginx_version(), **legs}


def _nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return (done.stderr or done.stdout).strip().split("/")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--searches", type=int, default=8, help="searches of the concurrency section")
    parser.add_argument("--scale-out-searches", type=int, default=6, help="searches per scale-out leg")
    add_data_dir(parser)
    parser.add_argument("--out", type=Path, default=None, help="default: runs/<cpu capability>.json")
    args = parser.parse_args()
    if not servers.PYTHON.exists():
        raise SystemExit("vLLM is not installed: run `make vllm` (scripts/setup-vllm.sh)")
    from darwin_chains.cli.record import machine_record

    folder = Path(tempfile.mkdtemp(prefix="darwin-serving-"))
    sections = {"concurrency": concurrency, "reward": reward, "scale-out": scale_out}
    results = {name: sections[name](args, folder) for name in args.sections}
    vllm_version = subprocess.run([str(servers.PYTHON), "-c", "import vllm; print(vllm.__version__)"],
                                  capture_output=True, text=True).stdout.strip()
    record = {"meta": {"machine": machine_record(), "vllm": vllm_version, "server_env": servers.SERVER_ENV,
                       "server_flags": servers.SERVER_FLAGS}, **results}
    out = args.out or RUNS / f"{machine_record()['cpu_capability'].lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
