"""Does a reward discriminate? How often it scores a GPT-4 Turbo answer above a SmolLM2-135M sample.

On the first 40 AlpacaEval dev prompts, each reward scores the `reference_output` (GPT-4 Turbo) and one SmolLM2
sample, both cut to the same number of SmolLM2 tokens (the shorter of the two, at most --tokens). A reward worth
optimising should prefer the reference nearly always; 50% is chance.

    python benchmarks/reward/reward_check.py                        # the default reward and the simple options
    python benchmarks/reward/reward_check.py --rewards relevance default --tokens 160

Run from the repository root. SmolLM2 samples are generated once (seeded) and cached in
benchmarks/reward/runs/reward-check/smollm2_samples.jsonl, beside the results (reward_check.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.speed.speed import add_data_dir  # noqa: E402 - the shared --data-dir, from the repository root
RESULTS = Path(__file__).resolve().parent / "runs" / "reward-check"


def rewards_by_name(names: list[str]):
    from darwin_chains import defaults
    from darwin_chains.rewards import DistinctReward

    return {n: DistinctReward() if n == "distinct" else defaults.reward(n) for n in names}


def samples(prompts: list[dict], tokens: int) -> list[str]:
    """One seeded SmolLM2 sample per prompt, cached on disk."""
    path = RESULTS / "smollm2_samples.jsonl"
    cached = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            cached[(row["id"], row["tokens"])] = row["sample"]
    missing = [p for p in prompts if (p["id"], tokens) not in cached]
    RESULTS.mkdir(parents=True, exist_ok=True)
    if missing:
        from darwin_chains import Prompt, Sampling, defaults

        policy = defaults.policy("embedded")
        for start in range(0, len(missing), 8):
            batch = missing[start : start + 8]
            beams = policy.start([Prompt.of(p["instruction"]) for p in batch], tokens)
            policy.extend(beams, tokens, Sampling(temperature=0.7, top_p=0.9), seed=start)
            with path.open("a") as f:
                for p, beam in zip(batch, beams):
                    cached[(p["id"], tokens)] = beam.response
                    f.write(json.dumps({"id": p["id"], "tokens": tokens, "sample": beam.response}) + "\n")
    return [cached[(p["id"], tokens)] for p in prompts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewards", nargs="+",
                        default=["relevance", "distinct", "relevance+distinct", "preference", "default"])
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=160)
    add_data_dir(parser, "alpaca_eval_dev.jsonl")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from darwin_chains import Prompt
    from darwin_chains.cli.record import machine_record
    from darwin_chains.embedded import smollm2_dir

    data = args.data_dir / "alpaca_eval_dev.jsonl"
    prompts = [json.loads(line) for line in data.read_text().splitlines()][: args.prompts]
    sampled = samples(prompts, args.tokens)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())

    def cut(text: str, n: int) -> str:
        return tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)[:n])

    pairs = []
    for p, s in zip(prompts, sampled):
        n = min(args.tokens, len(tokenizer.encode(p["reference_output"], add_special_tokens=False)),
                len(tokenizer.encode(s, add_special_tokens=False)))
        pairs.append((p["instruction"], cut(p["reference_output"], n), cut(s, n)))

    report = {"prompts": len(pairs), "tokens": args.tokens, "rewards": {}}
    for name, reward in rewards_by_name(args.rewards).items():
        wins = 0
        for instruction, reference, sample in pairs:
            ref_score, sample_score = reward.score(Prompt.of(instruction), [reference, sample])
            wins += ref_score > sample_score
        report["rewards"][name] = {"reference_preferred": wins / len(pairs),
                                   "reward": getattr(reward, "name", name)}
        print(f"{name:22s} prefers the GPT-4 Turbo answer on {wins}/{len(pairs)} = {wins / len(pairs):.0%}")
    report["machine"] = machine_record()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reward_check.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
