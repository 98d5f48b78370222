"""Experiment: SmolLM2's own hidden states as the preference head's backbone, instead of MiniLM.

One SmolLM2-135M forward pass over (chat-templated instruction, response cut to 128 tokens) gives the mean hidden
state of the response tokens at a middle layer and at the last layer. A linear Bradley-Terry head (the same `fit`
as the shipped head) is trained on the train split's judge pairs and validated on the shipped head's validation
instructions with the project's pair builder, whole and on 40- and 80-token prefixes.

    python benchmarks/reward/smollm2_backbone.py                          # all 324 train instructions
    python benchmarks/reward/smollm2_backbone.py --train-instructions 160  # the subset measured first

Features are cached in ~/.cache/darwin-chains/reward-training/smollm2-*/ (about 45 minutes for the whole split
and the validation prefixes on 2 CPU cores, in bf16). Writes benchmarks/reward/runs/backbone-cut<N>/
smollm2_backbone.json. Run from the repository root; the judgments and the pair builder are read from --prefs and
--pairs-tool (default: ../shared beside the checkout).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"
SEP = "\x00"  # a cache key is instruction SEP response


class SmolLM2Features:
    """`encode(keys)` for EmbeddingCache: mean response hidden states at `layer` and at the last layer."""

    def __init__(self, layer: int, cut: int, tokenizer):
        import torch
        from transformers import AutoModelForCausalLM

        from darwin_chains.embedded import smollm2_dir

        self.torch, self.layer, self.cut, self.tokenizer = torch, layer, cut, tokenizer
        self.model = AutoModelForCausalLM.from_pretrained(smollm2_dir(), dtype=torch.bfloat16).eval()

    def _ids(self, key: str) -> tuple[list[int], list[int]]:
        instruction, response = key.split(SEP, 1)
        head = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}],
                                                  add_generation_prompt=True, tokenize=False)
        head_ids = self.tokenizer(head, add_special_tokens=False)["input_ids"][-160:]
        response_ids = self.tokenizer(response, add_special_tokens=False)["input_ids"][: self.cut]
        return head_ids, response_ids or [self.tokenizer.eos_token_id]

    def encode(self, keys: list[str], batch: int = 16):
        torch = self.torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(keys), batch):
                encoded = [self._ids(k) for k in keys[i : i + batch]]
                width = max(len(h) + len(r) for h, r in encoded)
                ids = torch.zeros((len(encoded), width), dtype=torch.long)
                mask = torch.zeros_like(ids)
                for j, (h, r) in enumerate(encoded):  # right padding: positions stay plain
                    ids[j, : len(h) + len(r)] = torch.tensor(h + r)
                    mask[j, : len(h) + len(r)] = 1
                hidden = self.model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
                for j, (h, r) in enumerate(encoded):
                    span = slice(len(h), len(h) + len(r))
                    out.append(torch.cat([hidden[self.layer][j, span].float().mean(0),
                                          hidden[-1][j, span].float().mean(0)]))
        return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-instructions", type=int, default=None, help="a seeded subset of the train split")
    parser.add_argument("--layer", type=int, default=15, help="the middle layer (SmolLM2-135M has 30)")
    parser.add_argument("--cut", type=int, default=128, help="response tokens the backbone reads")
    parser.add_argument("--prefs", type=Path, default=None,
                        help="default: ../shared/data/alpaca_eval_prefs_dev.jsonl.gz")
    parser.add_argument("--pairs-tool", type=Path, default=None, help="default: ../shared/tools/preference_pairs.py")
    args = parser.parse_args()

    from darwin_chains.cli.record import machine_record
    from darwin_chains.embedded import cache_dir
    from darwin_chains.rewards.preference import WEIGHTS, PreferenceHead
    from training import reward_training as rt

    prefs, tool = args.prefs or rt.DEFAULT_DATA, args.pairs_tool or rt.DEFAULT_PAIRS_TOOL
    settings = PreferenceHead.load(WEIGHTS).meta["training"]
    rows = rt.load_rows(prefs)
    train_set, val_set = rt.split_instructions([r["instruction"] for r in rows], settings["seed"],
                                               settings["validation_share"])
    train_list = sorted(train_set)
    random.Random(0).shuffle(train_list)
    train_set = set(train_list[: args.train_instructions or len(train_list)])
    train_rows = [r for r in rows if r["instruction"] in train_set]
    pairs = rt.training_pairs(train_rows, settings["min_gap"])
    val = rt.validation_pairs(prefs, val_set, tool)
    cutter = rt.PrefixCutter()
    prefixes = (40, 80)

    train_keys = sorted({f"{i}{SEP}{t}" for i, a, b, _ in pairs for t in (a, b)})
    keys = set(train_keys) | {f"{p['instruction']}{SEP}{t}" for p in val for t in (p["a"], p["b"])}
    keys |= {f"{p['instruction']}{SEP}{cutter(t, n)}" for p in val for t in (p["a"], p["b"]) for n in prefixes}
    cache = rt.EmbeddingCache(cache_dir() / "reward-training" / f"smollm2-L{args.layer}-cut{args.cut}")
    start = time.time()
    cache.fill(sorted(keys), embedder=SmolLM2Features(args.layer, args.cut, cutter.tokenizer))
    feature_seconds = round(time.time() - start)

    def log_words(key: str) -> float:
        return float(np.log1p(len(key.split(SEP, 1)[1].split())))

    index = {k: n for n, k in enumerate(train_keys)}
    pair_index = np.array([(index[f"{i}{SEP}{a}"], index[f"{i}{SEP}{b}"]) for i, a, b, _ in pairs])
    variants = {"middle layer": slice(0, 576), "last layer": slice(576, 1152), "both": slice(0, 1152)}
    report = {"train_instructions": len(train_set), "validation_instructions": len(val_set),
              "train_pairs": len(pairs), "layer": args.layer, "response_tokens": args.cut,
              "feature_seconds_this_run": feature_seconds, "heads": []}
    for name, columns in variants.items():
        def features(keys_: list[str], columns=columns) -> np.ndarray:
            return np.hstack([cache.get(keys_)[:, columns], np.array([[log_words(k)] for k in keys_])])

        x = features(train_keys)
        for l2 in (0.1, 1.0, 3.0):
            head = rt.fit(x, pair_index, l2)

            def score(instruction: str, texts: list[str], head=head, features=features) -> list[float]:
                z = (features([f"{instruction}{SEP}{t}" for t in texts]) - head.mean) / head.scale
                return (z @ head.weights).tolist()

            table = rt.agreement_table(score, val, cutter, prefixes, tool)
            row = {"features": name, "l2": l2, "length_weight": round(float(head.weights[-1] / head.scale[-1]), 4),
                   **table}
            report["heads"].append(row)
            print(json.dumps(row), flush=True)
    report["machine"] = machine_record()
    out = RUNS / f"backbone-cut{args.cut}" / "smollm2_backbone.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
