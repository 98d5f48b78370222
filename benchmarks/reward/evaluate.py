"""How often rewards agree with GPT-4 Turbo on held-out AlpacaEval instructions, and what the preference reward costs.

Uses the validation instructions of the shipped preference head (same seed and share as its training) and the
project's pair builder (../shared/tools/preference_pairs.py). Compares: "longer wins", MiniLM cosine
(instruction vs response), the shipped preference head (and the same head with its length weight zeroed), and
SmolLM2-135M-Instruct as a 1-9 judge on a subsample of length-matched pairs. Also times loading and scoring.

    python benchmarks/reward/evaluate.py                  # writes benchmarks/reward/results.json
    python benchmarks/reward/evaluate.py --judge-pairs 0  # skip the slow SmolLM2 judge
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
OUT = Path(__file__).resolve().parent / "results.json"

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


def timings(reward_cls, prompt_cls, texts: list[str]) -> dict:
    fresh = subprocess.run(
        [sys.executable, "-c",
         "import time; t=time.perf_counter(); from darwin_chains.rewards import PreferenceReward; "
         "r=PreferenceReward(); a=time.perf_counter(); r.embedder; b=time.perf_counter(); "
         "print(a-t, b-a)"], capture_output=True, text=True, cwd=ROOT, check=True)
    construct_fresh, minilm_fresh = map(float, fresh.stdout.split())
    reward_cls()  # first in this process
    start = time.perf_counter()
    reward = reward_cls()
    second = time.perf_counter() - start
    prompt = prompt_cls.of("Explain how vaccines train the immune system.")
    reward.score(prompt, texts)  # warm: MiniLM loaded, instruction embedded once
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        reward.score(prompt, texts)
        runs.append(time.perf_counter() - start)
    return {"construct_second_in_process_s": round(second, 4),
            "construct_first_in_fresh_process_s": round(construct_fresh, 3),
            "minilm_load_first_in_fresh_process_s": round(minilm_fresh, 3),
            "score_5x256_tokens_median_s": round(statistics.median(runs), 3),
            "score_5x256_tokens_runs_s": [round(r, 3) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge-pairs", type=int, default=150)
    args = parser.parse_args()

    import numpy as np

    from darwin_chains import Prompt
    from darwin_chains import reward_training as rt
    from darwin_chains.rewards import PreferenceReward
    from darwin_chains.rewards.preference import WEIGHTS, PreferenceHead, features

    head = PreferenceHead.load(WEIGHTS)
    settings = head.meta["training"]
    rows = rt.load_rows(rt.DEFAULT_DATA)
    _, val_set = rt.split_instructions([r["instruction"] for r in rows], settings["seed"], settings["validation_share"])
    val = rt.validation_pairs(rt.DEFAULT_DATA, val_set)
    cutter = rt.PrefixCutter()
    cache = rt.EmbeddingCache()
    cache.fill(sorted(val_set))
    cache.fill([t for p in val for t in (p["a"], p["b"], *(cutter(x, n) for x in (p["a"], p["b"])
                                                                  for n in rt.PREFIX_TOKENS))])
    no_length = PreferenceHead(np.r_[head.weights[:-1], 0.0], head.mean, head.scale, head.bias, head.empty_score)

    def cosine(instruction, texts):
        return (cache.get(texts) @ cache.get([instruction])[0]).tolist()

    def longer(instruction, texts):
        return [len(t) for t in texts]

    scorers = {"longer_wins": longer, "minilm_cosine": cosine, "preference": rt.head_scorer(head, cache),
               "preference_length_weight_zeroed": rt.head_scorer(no_length, cache)}
    report = {"validation_instructions": len(val_set), "seed": settings["seed"], "rewards": {},
              "preference_on_topic_over_off_topic": head.meta["validation"].get("on_topic_over_off_topic")}
    for name, score in scorers.items():
        report["rewards"][name] = rt.agreement_table(score, val, cutter, rt.PREFIX_TOKENS)
        print(name, report["rewards"][name], flush=True)

    if args.judge_pairs:
        ys = rt.yardstick()
        matched = ys.length_matched(val)
        sample = random.Random(0).sample(matched, min(args.judge_pairs, len(matched)))
        start = time.time()
        rated = smollm2_judge(sample)
        judged = {k: a > b for k, (a, b) in rated.items()}

        def preferred(p: dict) -> bool:
            a, b = scorers["preference"](p["instruction"], [p["a"], p["b"]])
            return a > b

        report["smollm2_judge"] = {
            "pairs": len(sample), "subsample": "random.Random(0).sample of the length-matched validation pairs",
            "method": "1-9 rating prompt, expected digit from the next-token distribution; responses cut to 384 tokens",
            "smollm2_judge_length_matched": round(ys.agreement(sample, lambda p: judged[id(p)]), 4),
            "preference_same_pairs": round(ys.agreement(sample, lambda p: preferred(p)), 4),
            "longer_wins_same_pairs": round(ys.agreement(sample, lambda p: len(p["a"]) > len(p["b"])), 4),
            "seconds": round(time.time() - start, 1)}
        print(report["smollm2_judge"], flush=True)

    by_len = sorted((t for p in val for t in (p["a"], p["b"])), key=len, reverse=True)
    long_texts = [cutter(t, 256) for t in by_len[:5]]
    report["length_weight_per_log_word"] = round(head.length_weight, 4)
    report["timing"] = timings(PreferenceReward, Prompt, long_texts)
    report["timing"]["score_texts_smollm2_tokens"] = [len(cutter.tokenizer.encode(t, add_special_tokens=False))
                                                      for t in long_texts]
    print(report["timing"])
    OUT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
