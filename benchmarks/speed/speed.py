"""Speed of Darwin against Best-of-5 and against the model's own batched `generate`, measured side by side.

Settings follow the paper's cost comparison: 5 beams, m = 40, 256 max new tokens, 1 cycle. For every prompt the
three runs are interleaved, so machine noise hits them alike, and the medians over prompts are reported.

    python benchmarks/speed/speed.py         # embedded SmolLM2, 5 prompts -> benchmarks/speed/runs/<policy>-<device>/
    python benchmarks/speed/speed.py --prompts 3 --policy /path/to/model   # on a GPU machine it runs on CUDA

Run from the repository root. Prompts come from --data-dir (default: $DARWIN_CHAINS_DATA, else ../shared/data
beside the checkout).

Figures:
  wall ratio  = Darwin wall time / Best-of-5 wall time, same policy, reward and max new tokens (target <= 1.3;
                the paper's reference code: 33.9 s / 14.6 s = 2.3 on an A100)
  throughput  = Darwin tokens generated per second (scoring and replacement included) / tokens per second of the
                model's plain `generate` of 5 sampled sequences (target >= 0.8). Tokens are real tokens: padding
                after a sequence's end is not counted.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"


def add_data_dir(parser: argparse.ArgumentParser,
                 holds: str = "mt_bench_questions.jsonl and alpaca_eval_dev.jsonl") -> None:
    """--data-dir, which every benchmark reads its shared prompts and answers from."""
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("DARWIN_CHAINS_DATA", ROOT.parent / "shared" / "data")),
                        help=f"folder with {holds} (default: $DARWIN_CHAINS_DATA, else ../shared/data beside the "
                             "checkout)")


def load_prompts(n: int, data: Path) -> list[str]:
    """The first MT-Bench questions of different categories, then AlpacaEval dev instructions."""
    prompts, categories = [], set()
    for line in (data / "mt_bench_questions.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["category"] not in categories and row["category"] not in ("math", "coding"):
            categories.add(row["category"])
            prompts.append(row["turns"][0])
    for line in (data / "alpaca_eval_dev.jsonl").read_text().splitlines():
        prompts.append(json.loads(line)["instruction"])
    return prompts[:n]


def plain_generate(policy, prompt: str, n: int, max_new_tokens: int, seed: int) -> tuple[float, int]:
    """The model's own batched sampling: n copies of the prompt, HF `generate`."""
    import torch

    from darwin_chains import Prompt

    ids = torch.tensor([list(policy.encode(Prompt.of(prompt)))] * n, device=policy.device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        out = policy.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.7,
                                    top_p=0.9, max_new_tokens=max_new_tokens, pad_token_id=policy.pad_id)
    seconds = time.perf_counter() - start
    new = out[:, ids.shape[1]:]
    tokens = 0
    for row in new.tolist():  # count up to and including the first end token, as our policy does
        end = next((i for i, t in enumerate(row) if t in policy.eos_ids), None)
        tokens += len(row) if end is None else end + 1
    return seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--policy", default="embedded")
    parser.add_argument("--reward", default="default")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of every run per prompt, interleaved; each run's fastest round counts (seeded "
                             "runs repeat the same work, so the minimum filters a shared machine's noise)")
    parser.add_argument("--bf16-features", action="store_true",
                        help="also run Darwin with the default reward's encoder in bf16, side by side")
    add_data_dir(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for speed.json (default: benchmarks/speed/runs/<policy>-<device>)")
    args = parser.parse_args()

    from darwin_chains import Search, SearchConfig, TemplateMutator, defaults

    policy = defaults.policy(args.policy)
    reward = defaults.reward(args.reward, policy)
    base = SearchConfig(mutants=5, replacement_period=40, keep_top=3, mutation_cycles=1,
                        max_new_tokens=args.max_new_tokens)
    runs = {
        "darwin": Search(policy, reward, TemplateMutator(), base),
        "darwin (no seed sample)": Search(policy, reward, TemplateMutator(), base.replace(seed_sample=False)),
        "best-of-5": Search(policy, reward, None, base.replace(method="best-of-n")),
    }
    if args.bf16_features:
        from darwin_chains.rewards import PreferenceReward

        runs["darwin (bf16 features)"] = Search(policy, PreferenceReward(dtype="bf16"), TemplateMutator(), base)
    # Warm-up: first calls pay for lazy loading and allocator growth.
    for search in runs.values():
        search.run("Say hello.", max_new_tokens=8)
    plain_generate(policy, "Say hello.", 5, 8, 0)

    rows = []
    for i, prompt in enumerate(load_prompts(args.prompts, args.data_dir)):
        row = {"prompt": prompt[:80]}
        for _ in range(args.repeats):
            for name, search in runs.items():
                result = search.run(prompt, seed=i)
                t = result.trace
                row[name] = {"seconds": min(t.seconds, row.get(name, {}).get("seconds", math.inf)),
                             "tokens": t.tokens_generated, "encoded": t.tokens_encoded,
                             "reward_calls": t.reward_calls, "reward": result.reward}
            seconds, tokens = plain_generate(policy, prompt, 5, args.max_new_tokens, i)
            row["generate"] = {"seconds": min(seconds, row.get("generate", {}).get("seconds", math.inf)),
                               "tokens": tokens}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    def med(fn):
        return statistics.median(fn(r) for r in rows)

    tps = lambda r, k: r[k]["tokens"] / r[k]["seconds"]
    summary = {
        "wall_ratio_darwin_over_best_of_5": med(lambda r: r["darwin"]["seconds"] / r["best-of-5"]["seconds"]),
        "wall_ratio_darwin_no_seed_sample_over_best_of_5": med(
            lambda r: r["darwin (no seed sample)"]["seconds"] / r["best-of-5"]["seconds"]),
        **({"wall_ratio_darwin_bf16_features_over_fp32_features": med(
            lambda r: r["darwin (bf16 features)"]["seconds"] / r["darwin"]["seconds"])} if args.bf16_features else {}),
        "throughput_ratio_darwin_over_generate": med(lambda r: tps(r, "darwin") / tps(r, "generate")),
        "throughput_ratio_best_of_5_over_generate": med(lambda r: tps(r, "best-of-5") / tps(r, "generate")),
        "median_seconds": {k: med(lambda r, k=k: r[k]["seconds"]) for k in (*runs, "generate")},
        "median_tokens": {k: med(lambda r, k=k: r[k]["tokens"]) for k in (*runs, "generate")},
        "median_tokens_per_second": {k: med(lambda r, k=k: tps(r, k)) for k in (*runs, "generate")},
    }
    from darwin_chains.cli.record import machine_record

    meta = {
        "policy": policy.name, "reward": getattr(reward, "name", type(reward).__name__),
        "device": str(policy.device), "dtype": str(policy.model.dtype),
        "settings": {"beams": 5, "replacement_period": 40, "keep_top": 3, "cycles": 1,
                     "max_new_tokens": args.max_new_tokens, "temperature": 0.7, "top_p": 0.9, "prompts": len(rows),
                     "repeats": args.repeats},
        "machine": machine_record(),
    }
    out = args.out or RUNS / re.sub(r"[^a-z0-9.]+", "-", f"{policy.name}-{policy.device.type}".lower())
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=2))
    print(json.dumps({"meta": meta, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
