"""How often rewards agree with GPT-4 Turbo on held-out AlpacaEval instructions, and what the preference rewards cost.

Uses the validation instructions of the shipped preference heads (same seed and share as their training) and the
project's pair builder (--pairs-tool, by default ../shared/tools/preference_pairs.py beside the checkout).
Compares: "longer wins", MiniLM cosine (instruction vs response), the shipped SmolLM2 preference head (the default;
also with its length weight zeroed), the MiniLM preference head, and SmolLM2-135M-Instruct as a 1-9 judge on a
subsample of length-matched pairs. Also times loading and scoring. The SmolLM2 features are computed in --dtype
(default: the encoder's, `devices.feature_dtype_name`), one full pass per answer or, with --incremental, block by
block as the reward scores; the default output is runs/heads-<dtype>[-blocks]/<machine>.json, and rewards
not named in --rewards keep their figures from the last run in that file. Run from the repository root:

    python benchmarks/reward/evaluate.py                 # -> benchmarks/reward/runs/heads-fp32/<machine>.json
    python benchmarks/reward/evaluate.py --rewards preference --judge-pairs 0
    python benchmarks/reward/evaluate.py --dtype bf16 --incremental --rewards preference \
        preference_length_weight_zeroed --judge-pairs 0 --no-timing   # -> runs/heads-bf16-blocks/...
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"

JUDGE_PROMPT = (
    "Rate how well the response answers the instruction, on a scale from 1 (useless) to 9 (excellent). "
    "Reply with a single digit.\n\nInstruction:\n{instruction}\n\nResponse:\n{response}"
)


def smollm2_judge(pairs: list[dict], max_response_tokens: int = 384):
    """SmolLM2 asked for a 1-9 rating; the score is the expected digit under its next-token distribution
    (a parse that never fails; the argmax digit gives the same ranking up to ties)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from darwin_chains.embedded import smollm2_dir

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir()).eval()
    digits = [tok.encode(str(d), add_special_tokens=False)[0] for d in range(1, 10)]

    def rate(instruction: str, response: str) -> float:
        ids = tok.encode(response, add_special_tokens=False)[:max_response_tokens]
        text = JUDGE_PROMPT.format(instruction=instruction, response=tok.decode(ids))
        prompt = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                         tokenize=False) + "Rating: "
        with torch.inference_mode():
            logits = model(**tok(prompt, return_tensors="pt")).logits[0, -1, digits]
        return float((logits.softmax(-1) * torch.arange(1, 10)).sum())

    return {id(p): (rate(p["instruction"], p["a"]), rate(p["instruction"], p["b"])) for p in pairs}


TIMING = """
import time
t0 = time.perf_counter()
import torch, transformers
if {with_policy}:
    from darwin_chains import defaults
    defaults.policy("embedded")
t1 = time.perf_counter()
from darwin_chains.rewards import {cls}
reward = {cls}()
t2 = time.perf_counter()
reward.{backbone}
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def timings(reward_cls, backbone: str, prompt_cls, texts: list[str]) -> dict:
    """Load times in a fresh process (torch and transformers imported first: any policy needs them), also once the
    embedded policy is loaded (the default setup), and the median of 5 scorings of 5 long texts in this one, each
    a first read (nothing cached; a search's later periods read only what is new: incremental.py)."""
    def fresh(with_policy: bool) -> list[float]:
        script = TIMING.format(cls=reward_cls.__name__, backbone=backbone, with_policy=with_policy)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
        return list(map(float, done.stdout.split()))

    imports, construct, load = fresh(False)
    _, _, load_after_policy = fresh(True)
    reward = reward_cls()
    prompt = prompt_cls.of("Explain how vaccines train the immune system.")
    reward.score(prompt, texts)  # warm: backbone loaded, as in a search
    runs = []
    blocks = getattr(getattr(reward, "_encoder", None), "blocks", None)
    for _ in range(5):
        if blocks is not None:
            blocks.clear()
        start = time.perf_counter()
        reward.score(prompt, texts)
        runs.append(time.perf_counter() - start)
    return {"fresh_process_import_torch_transformers_s": round(imports, 3),
            "fresh_process_construct_s": round(construct, 3),
            "fresh_process_backbone_load_s": round(load, 3),
            "backbone_load_after_the_embedded_policy_loaded_s": round(load_after_policy, 3),
            "score_5x256_tokens_median_s": round(statistics.median(runs), 3),
            "score_5x256_tokens_runs_s": [round(r, 3) for r in runs]}


REWARDS = ("longer_wins", "minilm_cosine", "preference", "preference_length_weight_zeroed", "preference-minilm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewards", nargs="+", choices=REWARDS, default=list(REWARDS))
    parser.add_argument("--judge-pairs", type=int, default=150)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--prefs", type=Path, default=None,
                        help="AlpacaEval judgments (default: ../shared/data/alpaca_eval_prefs_dev.jsonl.gz)")
    parser.add_argument("--pairs-tool", type=Path, default=None,
                        help="the pair builder (default: ../shared/tools/preference_pairs.py)")
    parser.add_argument("--incremental", action="store_true",
                        help="SmolLM2 features read block by block, as PreferenceReward scores (ResponseEncoder.means)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default=None,
                        help="the SmolLM2 encoder's dtype (default: the library's, fp32 unless "
                             "$DARWIN_CHAINS_FEATURE_DTYPE says otherwise)")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/reward/runs/heads-<dtype>[-blocks]/<machine>.json "
                             "(record.machine_name: avx512-avx512_bf16, avx2, ...)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from darwin_chains import Prompt
    from darwin_chains.cli.record import machine, machine_name, machine_record
    from darwin_chains.rewards import MiniLMPreferenceReward, PreferenceReward
    from darwin_chains.rewards.preference import FEATURES, MINILM_FEATURES, MINILM_WEIGHTS, WEIGHTS, PreferenceHead
    from training import reward_training as rt

    dtype = rt.encoder_dtype(args.dtype)
    out = args.out or RUNS / f"heads-{dtype}{'-blocks' if args.incremental else ''}" / f"{machine_name(machine())}.json"
    prefs, tool = args.prefs or rt.DEFAULT_DATA, args.pairs_tool or rt.DEFAULT_PAIRS_TOOL
    ys = rt.yardstick(tool)
    head = PreferenceHead.load(WEIGHTS, FEATURES)
    settings = head.meta["training"]
    rows = rt.load_rows(prefs)
    _, val_set = rt.split_instructions([r["instruction"] for r in rows], settings["seed"], settings["validation_share"])
    val = rt.validation_pairs(prefs, val_set, tool)
    cutter = rt.PrefixCutter()
    tables = {}

    def table(backbone: str) -> rt.Table:
        if backbone not in tables:
            extra = {"incremental": args.incremental, "dtype": dtype} if backbone == "smollm2" else {}
            tables[backbone] = rt.TABLES[backbone](cutter=cutter, **extra)
            for p in val:
                for answer in (p["a"], p["b"]):
                    tables[backbone].want(p["instruction"], answer, rt.PREFIX_TOKENS)
            tables[backbone].fill()
        return tables[backbone]

    def cosine(instruction, texts):
        minilm = table("minilm").cache
        return (minilm.get(texts) @ minilm.get([instruction])[0]).tolist()

    def longer(instruction, texts):
        return [len(t) for t in texts]

    def scorer(name: str):
        if name == "longer_wins":
            return longer
        if name == "minilm_cosine":
            return cosine
        if name == "preference-minilm":
            return rt.head_scorer(PreferenceHead.load(MINILM_WEIGHTS, MINILM_FEATURES), table("minilm"))
        if name == "preference_length_weight_zeroed":
            zeroed = PreferenceHead(np.r_[head.weights[:-1], 0.0], head.mean, head.scale, head.bias, head.empty_score)
            return rt.head_scorer(zeroed, table("smollm2"))
        return rt.head_scorer(head, table("smollm2"))

    report = json.loads(out.read_text()) if out.exists() else {"rewards": {}}
    report.update({"validation_instructions": len(val_set), "seed": settings["seed"], "encoder_dtype": dtype,
                   "smollm2_features": "block by block (ResponseEncoder.means)" if args.incremental
                   else "one full pass per answer (ResponseEncoder.encode)",
                   "torch_threads": torch.get_num_threads(),
                   "preference_on_topic_over_off_topic": head.meta["validation"].get("on_topic_over_off_topic"),
                   "length_weight_per_log_word": round(head.length_weight, 4)})
    for name in args.rewards:
        report["rewards"][name] = rt.agreement_table(scorer(name), val, cutter, rt.PREFIX_TOKENS, tool)
        print(name, report["rewards"][name], flush=True)

    if args.judge_pairs:
        matched = ys.length_matched(val)
        sample = random.Random(0).sample(matched, min(args.judge_pairs, len(matched)))
        start = time.time()
        rated = smollm2_judge(sample)
        judged = {k: a > b for k, (a, b) in rated.items()}
        preference = scorer("preference")

        def preferred(p: dict) -> bool:
            a, b = preference(p["instruction"], [p["a"], p["b"]])
            return a > b

        report["smollm2_judge"] = {
            "pairs": len(sample), "subsample": "random.Random(0).sample of the length-matched validation pairs",
            "method": "1-9 rating prompt, expected digit from the next-token distribution; responses cut to 384 tokens",
            "smollm2_judge_length_matched": round(ys.agreement(sample, lambda p: judged[id(p)]), 4),
            "preference_same_pairs": round(ys.agreement(sample, lambda p: preferred(p)), 4),
            "longer_wins_same_pairs": round(ys.agreement(sample, lambda p: len(p["a"]) > len(p["b"])), 4),
            "seconds": round(time.time() - start, 1)}
        print(report["smollm2_judge"], flush=True)

    if not args.no_timing:
        by_len = sorted((t for p in val for t in (p["a"], p["b"])), key=len, reverse=True)
        long_texts = [cutter(t, 256) for t in by_len[:5]]
        report["timing"] = {"score_texts_smollm2_tokens": [len(cutter.tokenizer.encode(t, add_special_tokens=False))
                                                           for t in long_texts]}
        for name, cls, backbone in [("preference", PreferenceReward, "encoder"),
                                    ("preference-minilm", MiniLMPreferenceReward, "embedder")]:
            report["timing"][name] = timings(cls, backbone, Prompt, long_texts)
            print(name, report["timing"][name], flush=True)
    report["machine"] = machine_record()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
