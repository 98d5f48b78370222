"""Where a lone search's time goes: Darwin and Best-of-5 on the same prompts, each timed by part, with the engine
batch invariant (row attention, padded to 4 rows: `batch_invariant=True`) and batched (one attention call a step).

The engine's decoding steps are counted by how many rows they carried (a step of fewer than `MIN_ROWS` rows is
padded to that many, for batch invariance), prefill passes and the rest of the search (reward, mutation,
replacement, Python) are timed around the calls that do them. The committed profile is what the issue's
"the tail of few rows" and "the Python work per step" claims are checked against.

    python benchmarks/speed/time_parts.py --threads 2       # -> runs/profile-<cpu capability>/profile.json
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
PROMPTS = ["Give three tips for writing a clear email.", "Why is the sky blue?",
           "Explain how a refrigerator keeps food cold."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from darwin_chains import Search, SearchConfig, defaults
    from darwin_chains.cli.record import machine_record
    from darwin_chains.policies import engine as engine_module

    from darwin_chains.embedded import smollm2_dir
    from darwin_chains.policies.hf import HFPolicy

    reward, mutator = defaults.reward(), defaults.mutator("template")
    policies = {mode: HFPolicy.from_pretrained(smollm2_dir(), batch_invariant=mode == "invariant")
                for mode in ("invariant", "batched")}
    timings: dict[str, list[float]] = collections.defaultdict(list)
    steps: collections.Counter = collections.Counter()
    step_seconds: dict[int, float] = collections.defaultdict(float)

    def timed(cls, name: str, key) -> None:
        original = getattr(cls, name)

        def wrapper(self, *a, **k):
            started = time.perf_counter()
            try:
                return original(self, *a, **k)
            finally:
                key(self, time.perf_counter() - started)

        setattr(cls, name, wrapper)

    def step_key(engine, seconds):
        rows = len(engine._rows) if engine._rows else 0
        steps[rows] += 1
        step_seconds[rows] += seconds

    timed(engine_module.Engine, "_step", step_key)
    timed(engine_module.Engine, "_prefill", lambda e, s: timings["prefill"].append(s))
    timed(type(reward), "score", lambda r, s: timings["reward"].append(s))
    timed(type(mutator), "mutate", lambda m, s: timings["mutate"].append(s))

    results: dict = {}
    for prompt in PROMPTS[: args.prompts]:
        for mode, policy in policies.items():  # side by side, prompt by prompt
            search = Search(policy, reward, mutator, SearchConfig(max_new_tokens=args.max_new_tokens, seed=0))
            search.run("Say hi.", max_new_tokens=8)  # warm: models loaded, kernels ready
            for method in ("darwin", "best-of-n"):
                for d in (timings, steps, step_seconds):
                    d.clear()
                started = time.perf_counter()
                result = search.run(prompt, method=method)
                wall = time.perf_counter() - started
                parts = {"decoding_steps": sum(step_seconds.values()), **{k: sum(v) for k, v in timings.items()}}
                parts["rest (replacement, bookkeeping, Python)"] = wall - sum(parts.values())
                row = {"wall_s": round(wall, 2), "tokens_generated": result.trace.tokens_generated,
                       "parts_s": {k: round(v, 2) for k, v in parts.items()},
                       "steps_by_rows": {str(r): {"steps": n, "seconds": round(step_seconds[r], 2),
                                                  "ms_per_step": round(1000 * step_seconds[r] / n, 1)}
                                         for r, n in sorted(steps.items())},
                       "reward_calls": len(timings["reward"])}
                results.setdefault(mode, {}).setdefault(prompt, {})[method] = row
                print(mode, method, prompt[:30], json.dumps(row)[:300], flush=True)
    for mode, by_prompt in results.items():
        ratios = [r["darwin"]["wall_s"] / r["best-of-n"]["wall_s"] for r in by_prompt.values()]
        by_prompt["darwin_over_best_of_n_median"] = round(statistics.median(ratios), 3)
    summary = {mode: results[mode]["darwin_over_best_of_n_median"] for mode in results}
    summary["darwin_batched_over_invariant_median"] = round(statistics.median(
        results["batched"][p]["darwin"]["wall_s"] / results["invariant"][p]["darwin"]["wall_s"]
        for p in PROMPTS[: args.prompts]), 3)
    results["summary"] = summary
    results["settings"] = {"prompts": PROMPTS[: args.prompts], "max_new_tokens": args.max_new_tokens,
                           "threads": args.threads,
                           "seed": 0, "config": "defaults (5 beams, m=40, k=3, seed sample)"}
    results["machine"] = machine_record()
    cap = torch.backends.cpu.get_cpu_capability().lower()
    out = args.out or HERE / "runs" / f"profile-{cap}" / "profile.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(summary), f"wrote {out}")


if __name__ == "__main__":
    main()
