"""How far the default reward's features and scores move with the dtype and with how they are read.

Compares the SmolLM2 features of the 1,759 validation answers that `evaluate.py` computed and cached in each
dtype, read in one full pass and block by block (run the four `evaluate.py` variants first: --dtype fp32|bf16,
with and without --incremental). For each pair of ways it reports the largest feature difference relative to the
row's largest value, and the largest difference of the head's score of the whole answer. Run from the repository
root:

    python benchmarks/reward/feature_drift.py       # -> benchmarks/reward/runs/feature-drift/<machine>.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs" / "feature-drift"
WAYS = {"fp32 one pass": ("fp32", False), "fp32 blocks": ("fp32", True),
        "bf16 one pass": ("bf16", False), "bf16 blocks": ("bf16", True)}
PAIRS = [("fp32 blocks", "fp32 one pass"), ("bf16 blocks", "bf16 one pass"), ("bf16 one pass", "fp32 one pass"),
         ("bf16 blocks", "fp32 blocks")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="default: runs/feature-drift/<machine>.json")
    args = parser.parse_args()

    import numpy as np

    from darwin_chains.cli.record import machine_name, machine_record
    from darwin_chains.rewards.preference import FEATURES, WEIGHTS, PreferenceHead, features
    from training import reward_training as rt

    head = PreferenceHead.load(WEIGHTS, FEATURES)
    settings = head.meta["training"]
    rows = rt.load_rows(rt.DEFAULT_DATA)
    _, val_set = rt.split_instructions([r["instruction"] for r in rows], settings["seed"], settings["validation_share"])
    items = sorted({(p["instruction"], a) for p in rt.validation_pairs(rt.DEFAULT_DATA, val_set, rt.DEFAULT_PAIRS_TOOL)
                    for a in (p["a"], p["b"])})
    whole = rt.CUTS.index(rt.WHOLE)
    means, scores = {}, {}
    for way, (dtype, blocks) in WAYS.items():
        cache = rt.EmbeddingCache(rt.hidden_state_cache(blocks, dtype))
        instructions = rt.EmbeddingCache(cache.directory / "instructions")
        if cache.missing([f"{i}{rt.SEP}{a}" for i, a in items]):
            raise SystemExit(f"{way}: features not cached; run evaluate.py --dtype {dtype}"
                             f"{' --incremental' if blocks else ''} first")
        means[way] = np.stack([cache.get([f"{i}{rt.SEP}{a}"])[0].reshape(len(rt.CUTS), -1) for i, a in items])
        scores[way] = np.array([head(features(instructions.get([i])[0], means[way][n, whole][None], [a]))[0]
                                for n, (i, a) in enumerate(items)])

    def drift(a: str, b: str) -> dict:
        x, y = means[a], means[b]
        both = ~(np.isnan(x).any(-1) | np.isnan(y).any(-1))  # block reads have no 128-token cut
        relative = (np.abs(x - y).max(-1) / np.abs(y).max(-1))[both]
        score = np.abs(scores[a] - scores[b])
        return {"feature_max_relative_to_row_max": float(f"{relative.max():.3g}"),
                "feature_median_relative_to_row_max": float(f"{np.median(relative):.3g}"),
                "score_max_abs": float(f"{score.max():.3g}"), "score_p99_abs": float(f"{np.percentile(score, 99):.3g}"),
                "score_median_abs": float(f"{np.median(score):.3g}")}

    report = {"what": "SmolLM2 feature and head-score differences between dtypes and read orders, over the "
                      "validation answers' cached features (every cut; scores of the whole answer)",
              "answers": len(items), "score_std_fp32": round(float(scores["fp32 one pass"].std()), 3),
              "drift": {f"{a} vs {b}": drift(a, b) for a, b in PAIRS}, "machine": machine_record()}
    out = args.out or RUNS / f"{machine_name(report['machine'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
