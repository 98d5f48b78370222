"""What the reader costs a Darwin search: the same seeded RAG searches with the default reward, and with the same
reward whose groundedness check has no reader (the lookup alone), interleaved prompt by prompt.

    python benchmarks/grounding/search_cost.py --threads 1 --name avx512-1thread
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from passages import PASSAGES  # noqa: E402

SYSTEM = "Answer the question using only this context.\n\nContext:\n{context}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--name", default=None, help="write runs/NAME/search_cost.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from darwin_chains import Prompt, Search, SearchConfig, defaults
    from darwin_chains.cli.record import machine_record
    from darwin_chains.rewards import Groundedness, PreferenceReward

    policy, mutator = defaults.policy("embedded"), defaults.mutator("template")
    rewards = {"reader": defaults.reward(), "lookup": PreferenceReward(grounding=Groundedness(reader=False))}
    config = SearchConfig(max_new_tokens=args.max_new_tokens, seed=0)
    rows = []
    for i, (_, passage, question, _) in enumerate(PASSAGES[: args.prompts]):
        context = "\n\n".join([passage, PASSAGES[(i + 7) % len(PASSAGES)][1], PASSAGES[(i + 19) % len(PASSAGES)][1]])
        prompt = Prompt.of([("system", SYSTEM.format(context=context)), ("user", question)])
        for name in (["reader", "lookup"] if i % 2 == 0 else ["lookup", "reader"]):
            started = time.perf_counter()
            result = Search(policy, rewards[name], mutator, config).run(prompt)
            rows.append({"prompt": i, "reward": name, "seconds": round(time.perf_counter() - started, 2),
                         "tokens": result.trace.tokens_generated, "answer": result.answer,
                         "grounding": result.grounding})
            print(json.dumps(rows[-1])[:200], flush=True)
    ratio = statistics.median(r["seconds"] / l["seconds"] for r in rows for l in rows
                              if r["reward"] == "reader" and l["reward"] == "lookup" and r["prompt"] == l["prompt"])
    results = {"median_time_ratio_reader_over_lookup": round(ratio, 3), "rows": rows,
               "settings": {"max_new_tokens": args.max_new_tokens, "prompts": args.prompts, "seed": 0,
                            "threads": args.threads, "method": "darwin, defaults"},
               "reader_tokens_read": rewards["reader"].grounding.reader.tokens_read, "machine": machine_record()}
    print("median time ratio, reader / lookup:", results["median_time_ratio_reader_over_lookup"])
    if args.name:
        out = HERE / "runs" / args.name / "search_cost.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
