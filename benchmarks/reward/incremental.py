"""What the default reward costs per period of one search: reading only what is new against reading every beam again,
in each dtype the encoder can run in.

Simulates one Darwin search's 5 beams growing by 40 tokens a period (40, 80, ..., 240, then the 256 the reward
reads), and times `PreferenceReward.score` of the 5 beams each period two ways, side by side on one encoder per
dtype: incremental (`ResponseEncoder.means`, what the reward does) and from scratch (one full pass per beam over
prompt and response, `ResponseEncoder.encode`, what it did before). Also times a cold read: the 256-token beams
with nothing cached (a response seen for the first time, or evicted). Repeats are whole searches, each from an
empty cache, with the ways and dtypes interleaved period by period. The beams are the first 5 AlpacaEval dev
reference answers with at least 256 SmolLM2 tokens. Run from the repository root, alone on the machine:

    python benchmarks/reward/incremental.py --threads 2   # -> benchmarks/reward/runs/incremental/<cpu capability>.json
    python benchmarks/reward/incremental.py --dtypes fp32  # one dtype only (bf16 is slow where it is emulated)
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
RUNS = Path(__file__).resolve().parent / "runs" / "incremental"

INSTRUCTION = "Explain how vaccines train the immune system."
PERIODS = (40, 80, 120, 160, 200, 240, 256)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir(parser, "alpaca_eval_dev.jsonl")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block-tokens", type=int, default=None, help="default: the encoder's (BLOCK_TOKENS)")
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=None, help="default: runs/incremental/<cpu capability>.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from darwin_chains import Prompt
    from darwin_chains.cli.record import machine_name, machine_record
    from darwin_chains.devices import feature_dtype_name
    from darwin_chains.rewards import PreferenceReward
    from darwin_chains.rewards.hidden_states import ResponseEncoder
    from darwin_chains.rewards.preference import features

    class FromScratch(PreferenceReward):
        """The reward as it read before: every beam from its first token, every period."""

        def _features(self, instruction, texts):
            encoder = self.encoder
            return features(encoder.instruction(instruction), encoder.encode([(instruction, t) for t in texts]),
                            texts)

    torch.set_num_threads(args.threads)
    options = {"block_tokens": args.block_tokens} if args.block_tokens else {}
    encoders = {d: ResponseEncoder(dtype=d, **options) for d in args.dtypes}
    rewards = {(d, way): kind(encoder=e) for d, e in encoders.items()
               for way, kind in (("incremental", PreferenceReward), ("from_scratch", FromScratch))}
    tokenizer = next(iter(encoders.values())).tokenizer
    beams = long_answer_ids(args.data_dir, tokenizer)
    periods = {n: [tokenizer.decode(ids[:n]) for ids in beams] for n in PERIODS}
    prompt = Prompt.of(INSTRUCTION)
    for d, encoder in encoders.items():
        encoder.instruction(INSTRUCTION)  # read once per search either way
        rewards[d, "from_scratch"].score(prompt, periods[40])  # warm up

    wall = {key: {n: [] for n in PERIODS} for key in rewards}
    cpu = {key: {n: [] for n in PERIODS} for key in rewards}
    tokens: dict[int, list[int]] = {n: [] for n in PERIODS}
    scores: dict[tuple[str, str], dict[int, list[float]]] = {key: {} for key in rewards}
    cold_wall, cold_cpu = {d: [] for d in encoders}, {d: [] for d in encoders}
    for _ in range(args.repeats):
        for encoder in encoders.values():
            encoder.blocks.clear()
        for n in PERIODS:
            for (d, way), reward in rewards.items():
                encoder = encoders[d]
                before, start, start_cpu = encoder.tokens_encoded, time.perf_counter(), time.process_time()
                scores[d, way][n] = reward.score(prompt, periods[n])
                wall[d, way][n].append(time.perf_counter() - start)
                cpu[d, way][n].append(time.process_time() - start_cpu)
                if way == "incremental":
                    tokens[n].append(encoder.tokens_encoded - before)
        for d, encoder in encoders.items():
            encoder.blocks.clear()
            start, start_cpu = time.perf_counter(), time.process_time()
            cold = rewards[d, "incremental"].score(prompt, periods[256])
            cold_wall[d].append(time.perf_counter() - start)
            cold_cpu[d].append(time.process_time() - start_cpu)
            if d == "fp32":  # the exactness fp32 promises; bf16's cold read is reported below
                assert cold == scores[d, "incremental"][256], "a cold read must score as the incremental one"
            scores[d, "cold"] = {256: cold}

    def median(runs: dict[int, list[float]]) -> dict[int, float]:
        return {n: round(statistics.median(v), 3) for n, v in runs.items()}

    def by_dtype(make) -> dict[str, object]:
        return {d: make(d) for d in encoders}

    def largest_gap(a: list[float], b: list[float]) -> float:
        return round(float(np.abs(np.subtract(a, b)).max()), 5)

    def same_order(a: list[float], b: list[float]) -> bool:
        return bool((np.argsort(a) == np.argsort(b)).all())

    machine = machine_record()
    report = {
        "what": "PreferenceReward.score of one search's 5 beams per period, beams growing 40 tokens a period; "
                "median over repeats, each repeat a whole search from an empty cache, per encoder dtype",
        "instruction": INSTRUCTION,
        "periods_response_tokens": list(PERIODS),
        "block_tokens": next(iter(encoders.values())).block_tokens,
        "cache_tokens": next(iter(encoders.values())).blocks.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": machine["cpu_bf16"],
        "default_feature_dtype": feature_dtype_name(),
        "median_wall_s": by_dtype(lambda d: {way: median(wall[d, way]) for way in ("incremental", "from_scratch")}),
        "median_cpu_s": by_dtype(lambda d: {way: median(cpu[d, way]) for way in ("incremental", "from_scratch")}),
        "from_scratch_over_incremental_cpu": by_dtype(
            lambda d: {n: round(statistics.median(cpu[d, "from_scratch"][n])
                                / statistics.median(cpu[d, "incremental"][n]), 2) for n in PERIODS}),
        "search_total_cpu_s": by_dtype(lambda d: {way: round(sum(statistics.median(cpu[d, way][n]) for n in PERIODS),
                                                             3) for way in ("incremental", "from_scratch")}),
        "search_total_wall_s": by_dtype(lambda d: {way: round(sum(statistics.median(wall[d, way][n])
                                                                  for n in PERIODS), 3)
                                                   for way in ("incremental", "from_scratch")}),
        "incremental_tokens_encoded": {n: v[0] for n, v in tokens.items()},
        "cold_read_256_median_s": by_dtype(lambda d: {"wall": round(statistics.median(cold_wall[d]), 3),
                                                      "cpu": round(statistics.median(cold_cpu[d]), 3)}),
        "max_abs_score_difference_incremental_vs_from_scratch": by_dtype(
            lambda d: {n: largest_gap(scores[d, "incremental"][n], scores[d, "from_scratch"][n]) for n in PERIODS}),
        "same_ranking_incremental_vs_from_scratch": by_dtype(
            lambda d: {n: same_order(scores[d, "incremental"][n], scores[d, "from_scratch"][n]) for n in PERIODS}),
        "max_abs_score_difference_cold_vs_incremental_256": by_dtype(
            lambda d: largest_gap(scores[d, "cold"][256], scores[d, "incremental"][256])),
        "repeats": args.repeats,
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine,
    }
    if len(encoders) == 2:
        report["bf16_over_fp32"] = {
            "search_total_cpu": round(report["search_total_cpu_s"]["bf16"]["incremental"]
                                      / report["search_total_cpu_s"]["fp32"]["incremental"], 2),
            "search_total_wall": round(report["search_total_wall_s"]["bf16"]["incremental"]
                                       / report["search_total_wall_s"]["fp32"]["incremental"], 2)}
        report["max_abs_score_difference_bf16_vs_fp32"] = {
            n: largest_gap(scores["bf16", "incremental"][n], scores["fp32", "incremental"][n]) for n in PERIODS}
        report["same_ranking_bf16_vs_fp32"] = {
            n: same_order(scores["bf16", "incremental"][n], scores["fp32", "incremental"][n]) for n in PERIODS}
    out = args.out or RUNS / f"{machine_name(machine)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
