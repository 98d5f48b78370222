"""Concurrent Darwin searches on one local model: does batching them pay, and does it change their answers?

    python benchmarks/concurrency/concurrency.py            # embedded SmolLM2, 8 searches -> runs/<policy>-<device>/
    python benchmarks/concurrency/concurrency.py --searches 4 --max-new-tokens 64 --threads 2 --out /tmp/conc

The same seeded searches (5 beams, m = 40, top-3, 1 cycle, the default reward and the template mutator), one per
prompt, run in one process:

- `sequential`: one after another, `Search.run`;
- `concurrent`: all at once, `asyncio.gather` of `Search.arun`; their beams are rows of one running batch;
- `generate_5`: the model's own `generate`, 5 sampled rows of one prompt, prompt after prompt;
- `generate_batched`: one `generate` of 5 rows per prompt for every prompt at once (40 rows for 8 searches).

Every run has the same token budget (max new tokens per row). Run from the repository root. Prompts come from
--data-dir (default: $DARWIN_CHAINS_DATA, else ../shared/data beside the checkout).

Figures:
  wall ratio        = concurrent wall / sequential wall (target <= 0.5)
  throughput ratio  = concurrent tokens per second / generate_batched tokens per second (target >= 0.7). Search
                      tokens are every sampled token (beams and seed sample); generate's are counted up to and
                      including a row's first end token, as the policy counts them.
  answers equal     = how many concurrent answers are exactly the sequential answer of the same seed (target: all)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"
BEAMS = 5

from benchmarks.speed.speed import add_data_dir, load_prompts  # noqa: E402 - speed.py's prompt set, from the repository root


def generate(policy, prompts: list[str], rows_per_prompt: int, max_new_tokens: int, seed: int) -> dict:
    """The model's own batched sampling of every prompt `rows_per_prompt` times in one call (left-padded)."""
    import torch

    from darwin_chains import Prompt

    encoded = [list(policy.encode(Prompt.of(p))) for p in prompts for _ in range(rows_per_prompt)]
    width = max(map(len, encoded))
    ids = torch.tensor([[policy.pad_id] * (width - len(e)) + e for e in encoded], device=policy.device)
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=policy.device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        out = policy.model.generate(ids, attention_mask=mask, do_sample=True, temperature=0.7, top_p=0.9,
                                    max_new_tokens=max_new_tokens, pad_token_id=policy.pad_id)
    seconds = time.perf_counter() - start
    tokens = 0
    for row in out[:, width:].tolist():  # up to and including the first end token, as the policy counts
        end = next((i for i, t in enumerate(row) if t in policy.eos_ids), None)
        tokens += len(row) if end is None else end + 1
    return {"seconds": seconds, "tokens": tokens, "rows": len(encoded)}


def summed(runs: list[dict], wall: float, **extra) -> dict:
    tokens = sum(r["tokens"] for r in runs)
    return {"seconds": wall, "tokens": tokens, "tokens_per_second": tokens / wall, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searches", type=int, default=8, help="searches, one prompt each")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--policy", default="embedded")
    parser.add_argument("--reward", default="default")
    parser.add_argument("--mutator", default="template")
    add_data_dir(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.json (default: benchmarks/concurrency/runs/<policy>-<device>)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from darwin_chains import Search, SearchConfig, defaults

    prompts = load_prompts(args.searches, args.data_dir)
    if len(prompts) < args.searches:
        parser.error(f"only {len(prompts)} prompts in {args.data_dir}")
    policy = defaults.policy(args.policy)
    reward = defaults.reward(args.reward, policy)
    config = SearchConfig(mutants=BEAMS, replacement_period=40, keep_top=3, mutation_cycles=1,
                          max_new_tokens=args.max_new_tokens)
    search = Search(policy, reward, defaults.mutator(args.mutator, policy), config)
    engine = getattr(policy, "engine", None)

    # Warm-up: first calls pay for lazy loading and allocator growth.
    search.run("Say hello.", max_new_tokens=8)
    generate(policy, ["Say hello."], BEAMS, 8, 0)

    def reset_peak() -> None:
        if engine is not None:
            engine.peak_rows = 0

    def peak() -> int | None:
        return engine.peak_rows if engine is not None else None

    def one(result) -> dict:
        t = result.trace
        return {"seconds": t.seconds, "tokens": t.tokens_generated, "encoded": t.tokens_encoded,
                "reward": result.reward, "answer": result.answer}

    reset_peak()
    start = time.perf_counter()
    sequential = [one(search.run(p, seed=i)) for i, p in enumerate(prompts)]
    sequential_wall, sequential_peak = time.perf_counter() - start, peak()
    print(f"sequential: {sequential_wall:.1f} s", file=sys.stderr)

    async def together() -> list:
        return await asyncio.gather(*(search.arun(p, seed=i) for i, p in enumerate(prompts)))

    reset_peak()
    start = time.perf_counter()
    concurrent = [one(r) for r in asyncio.run(together())]
    concurrent_wall, concurrent_peak = time.perf_counter() - start, peak()
    print(f"concurrent: {concurrent_wall:.1f} s", file=sys.stderr)

    start = time.perf_counter()
    per_prompt = [generate(policy, [p], BEAMS, args.max_new_tokens, i) for i, p in enumerate(prompts)]
    generate_5_wall = time.perf_counter() - start
    batched = generate(policy, prompts, BEAMS, args.max_new_tokens, 0)
    print(f"generate: {generate_5_wall:.1f} s at {BEAMS} rows, {batched['seconds']:.1f} s at {batched['rows']} rows",
          file=sys.stderr)

    runs = {
        "sequential": summed(sequential, sequential_wall, peak_rows=sequential_peak),
        "concurrent": summed(concurrent, concurrent_wall, peak_rows=concurrent_peak,
                             median_search_seconds=statistics.median(r["seconds"] for r in concurrent),
                             max_search_seconds=max(r["seconds"] for r in concurrent)),
        "generate_5": summed(per_prompt, generate_5_wall, rows=BEAMS),
        "generate_batched": summed([batched], batched["seconds"], rows=batched["rows"]),
    }
    equal = sum(s["answer"] == c["answer"] for s, c in zip(sequential, concurrent))
    summary = {
        "wall_ratio_concurrent_over_sequential": concurrent_wall / sequential_wall,
        "throughput_ratio_concurrent_over_generate_batched":
            runs["concurrent"]["tokens_per_second"] / runs["generate_batched"]["tokens_per_second"],
        "throughput_ratio_sequential_over_generate_5":
            runs["sequential"]["tokens_per_second"] / runs["generate_5"]["tokens_per_second"],
        "answers_equal": equal,
        "searches": len(prompts),
        "tokens_equal": sum(s["tokens"] == c["tokens"] for s, c in zip(sequential, concurrent)),
        "peak_rows": {"sequential": sequential_peak, "concurrent": concurrent_peak},
        "targets": {"wall_ratio_concurrent_over_sequential": "<= 0.5",
                    "throughput_ratio_concurrent_over_generate_batched": ">= 0.7",
                    "answers_equal": f"{len(prompts)} of {len(prompts)}"},
    }
    from darwin_chains.cli.record import machine_record

    meta = {
        "policy": policy.name, "reward": getattr(reward, "name", type(reward).__name__), "mutator": args.mutator,
        "device": str(policy.device), "dtype": str(policy.model.dtype),
        "settings": {"searches": len(prompts), "beams": BEAMS, "seed_sample": config.seed_sample,
                     "replacement_period": 40, "keep_top": 3, "cycles": 1, "max_new_tokens": args.max_new_tokens,
                     "temperature": 0.7, "top_p": 0.9, "seeds": list(range(len(prompts))), "threads": args.threads},
        "machine": machine_record(),
    }
    searches = [{"prompt": p[:80], "seed": i, "sequential": s, "concurrent": c,
                 "answer_equal": s["answer"] == c["answer"]}
                for i, (p, s, c) in enumerate(zip(prompts, sequential, concurrent))]
    out = args.out or RUNS / re.sub(r"[^a-z0-9.]+", "-", f"{policy.name}-{policy.device.type}".lower())
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs,
                                                  "searches": searches}, indent=2) + "\n")
    print(json.dumps({"summary": summary, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
