"""The default reward's encoder in fp32 and in bf16, side by side in one process: what each costs to score 5
responses of 256 tokens here, and how far the scores move.

The encoder runs in the dtype `devices.feature_dtype` picks (bf16 only on CPUs with native bf16); the shipped head
was trained on bf16 features. Runs are interleaved (fp32, bf16, fp32, ...) so machine noise hits both alike, and
each run's CPU time is kept beside its wall time: on a loaded machine the wall time counts the other processes too.
Responses are the first 5 AlpacaEval dev reference answers with at least 256 SmolLM2 tokens, cut to 256. Run from
the repository root:

    python benchmarks/reward/encoder_dtype.py     # -> benchmarks/reward/runs/encoder-dtype/<cpu capability>.json
    python benchmarks/reward/encoder_dtype.py --threads 2 --repeats 7
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed.speed import add_data_dir  # noqa: E402 - the shared --data-dir, from the repository root
RUNS = Path(__file__).resolve().parent / "runs" / "encoder-dtype"
INSTRUCTION = "Explain how vaccines train the immune system."


def long_answer_ids(data_dir: Path, tokenizer, n: int = 5, tokens: int = 256) -> list[list[int]]:
    """The first `n` AlpacaEval dev reference answers of at least `tokens` tokens, cut to that many."""
    out = []
    for line in (data_dir / "alpaca_eval_dev.jsonl").read_text().splitlines():
        ids = tokenizer.encode(json.loads(line)["reference_output"], add_special_tokens=False)
        if len(ids) >= tokens:
            out.append(ids[:tokens])
        if len(out) == n:
            return out
    raise SystemExit(f"fewer than {n} answers of {tokens} tokens in {data_dir}")


def long_answers(data_dir: Path, tokenizer, n: int = 5, tokens: int = 256) -> list[str]:
    return [tokenizer.decode(ids) for ids in long_answer_ids(data_dir, tokenizer, n, tokens)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir(parser, "alpaca_eval_dev.jsonl")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: other processes share the cores)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="default: runs/encoder-dtype/<cpu capability>.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from darwin_chains import Prompt
    from darwin_chains.cli.record import machine_record
    from darwin_chains.devices import feature_dtype
    from darwin_chains.rewards import PreferenceReward
    from darwin_chains.rewards.hidden_states import ResponseEncoder

    torch.set_num_threads(args.threads)
    encoders = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        encoder = ResponseEncoder()
        encoder.model.to(dtype)  # the same weights, cast as from_pretrained(dtype=...) casts them
        encoders[name] = encoder
    rewards = {name: PreferenceReward(encoder=e) for name, e in encoders.items()}
    texts = long_answers(args.data_dir, encoders["fp32"].tokenizer)
    prompt = Prompt.of(INSTRUCTION)

    scores = {name: reward.score(prompt, texts) for name, reward in rewards.items()}  # warm: instruction cached
    runs: dict[str, list[float]] = {name: [] for name in rewards}
    cpu: dict[str, list[float]] = {name: [] for name in rewards}
    for _ in range(args.repeats):
        for name, reward in rewards.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            reward.score(prompt, texts)
            runs[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)

    fp32, bf16 = (np.array(scores[k]) for k in ("fp32", "bf16"))
    median = {k: statistics.median(v) for k, v in runs.items()}
    median_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    report = {
        "what": "PreferenceReward.score of 5 responses of 256 SmolLM2 tokens, one instruction already seen",
        "texts_tokens": [len(encoders["fp32"].tokenizer.encode(t, add_special_tokens=False)) for t in texts],
        "feature_dtype_picked_here": str(feature_dtype()).removeprefix("torch."),
        "median_s": {k: round(v, 3) for k, v in median.items()},
        "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "bf16_over_fp32_time": round(median["bf16"] / median["fp32"], 2),
        "median_cpu_s": {k: round(v, 3) for k, v in median_cpu.items()},
        "cpu_runs_s": {k: [round(x, 3) for x in v] for k, v in cpu.items()},
        "bf16_over_fp32_cpu_time": round(median_cpu["bf16"] / median_cpu["fp32"], 2),
        "scores": {k: [round(x, 4) for x in v] for k, v in scores.items()},
        "max_abs_score_difference": round(float(np.abs(fp32 - bf16).max()), 4),
        "same_ranking": bool((np.argsort(fp32) == np.argsort(bf16)).all()),
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine_record(),
    }
    out = args.out or RUNS / f"{report['machine']['cpu_capability'].lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
