"""What the default reward costs per period of one search: reading only what is new against reading every beam again.

Simulates one Darwin search's 5 beams growing by 40 tokens a period (40, 80, ..., 240, then the 256 the reward
reads), and times `PreferenceReward.score` of the 5 beams each period two ways, side by side on one encoder:
incremental (`ResponseEncoder.means`, what the reward does) and from scratch (one full pass per beam over prompt
and response, `ResponseEncoder.encode`, what it did before). Also times a cold read: the 256-token beams with
nothing cached (a response seen for the first time, or evicted). Repeats are whole searches, each from an empty
cache, with the two ways interleaved period by period. The beams are the first 5 AlpacaEval dev reference answers
with at least 256 SmolLM2 tokens. Run from the repository root:

    python benchmarks/reward/incremental.py --threads 2   # -> benchmarks/reward/runs/incremental/<cpu capability>.json
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

from encoder_dtype import long_answer_ids  # noqa: E402 - beside this script, which Python puts on the path
INSTRUCTION = "Explain how vaccines train the immune system."
PERIODS = (40, 80, 120, 160, 200, 240, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_dir(parser, "alpaca_eval_dev.jsonl")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block-tokens", type=int, default=None, help="default: the encoder's (BLOCK_TOKENS)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/incremental/<cpu capability>.json")
    args = parser.parse_args()

    import numpy as np
    import torch

    from darwin_chains import Prompt
    from darwin_chains.cli.record import machine_record
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
    encoder = ResponseEncoder(**({"block_tokens": args.block_tokens} if args.block_tokens else {}))
    rewards = {"incremental": PreferenceReward(encoder=encoder), "from_scratch": FromScratch(encoder=encoder)}
    beams = long_answer_ids(args.data_dir, encoder.tokenizer)
    periods = {n: [encoder.tokenizer.decode(ids[:n]) for ids in beams] for n in PERIODS}
    prompt = Prompt.of(INSTRUCTION)
    encoder.instruction(INSTRUCTION)  # read once per search either way
    rewards["from_scratch"].score(prompt, periods[40])  # warm up

    wall = {way: {n: [] for n in PERIODS} for way in rewards}
    cpu = {way: {n: [] for n in PERIODS} for way in rewards}
    tokens: dict[int, list[int]] = {n: [] for n in PERIODS}
    scores: dict[str, dict[int, list[float]]] = {way: {} for way in rewards}
    cold_wall, cold_cpu = [], []
    for _ in range(args.repeats):
        encoder.blocks.clear()
        for n in PERIODS:
            for way, reward in rewards.items():
                before, start, start_cpu = encoder.tokens_encoded, time.perf_counter(), time.process_time()
                scores[way][n] = reward.score(prompt, periods[n])
                wall[way][n].append(time.perf_counter() - start)
                cpu[way][n].append(time.process_time() - start_cpu)
                if way == "incremental":
                    tokens[n].append(encoder.tokens_encoded - before)
        encoder.blocks.clear()
        start, start_cpu = time.perf_counter(), time.process_time()
        cold = rewards["incremental"].score(prompt, periods[256])
        cold_wall.append(time.perf_counter() - start)
        cold_cpu.append(time.process_time() - start_cpu)
        assert cold == scores["incremental"][256], "a cold read must score as the incremental one, bitwise"

    def median(runs: dict[int, list[float]]) -> dict[int, float]:
        return {n: round(statistics.median(v), 3) for n, v in runs.items()}

    machine = machine_record()
    report = {
        "what": "PreferenceReward.score of one search's 5 beams per period, beams growing 40 tokens a period; "
                "median over repeats, each repeat a whole search from an empty cache",
        "instruction": INSTRUCTION,
        "periods_response_tokens": list(PERIODS),
        "block_tokens": encoder.block_tokens,
        "cache_tokens": encoder.blocks.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "feature_dtype": str(next(encoder.model.parameters()).dtype).removeprefix("torch."),
        "median_wall_s": {way: median(v) for way, v in wall.items()},
        "median_cpu_s": {way: median(v) for way, v in cpu.items()},
        "from_scratch_over_incremental_cpu": {n: round(statistics.median(cpu["from_scratch"][n])
                                                       / statistics.median(cpu["incremental"][n]), 2)
                                              for n in PERIODS},
        "search_total_cpu_s": {way: round(sum(statistics.median(v[n]) for n in PERIODS), 3)
                               for way, v in cpu.items()},
        "incremental_tokens_encoded": {n: v[0] for n, v in tokens.items()},
        "cold_read_256_median_s": {"wall": round(statistics.median(cold_wall), 3),
                                   "cpu": round(statistics.median(cold_cpu), 3)},
        "max_abs_score_difference": {n: round(float(np.abs(np.subtract(scores["incremental"][n],
                                                                        scores["from_scratch"][n])).max()), 5)
                                     for n in PERIODS},
        "same_ranking": {n: bool((np.argsort(scores["incremental"][n]) == np.argsort(scores["from_scratch"][n])).all())
                         for n in PERIODS},
        "repeats": args.repeats,
        "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine,
    }
    out = args.out or RUNS / f"{report['cpu_capability'].lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
