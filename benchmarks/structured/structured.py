"""Structured output on the embedded model: how often does `with_structured_output` return a valid object?

    python benchmarks/structured/structured.py --threads 1          # 20 prompts -> runs/<policy>-<device>/
    python benchmarks/structured/structured.py --prompts 5 --max-new-tokens 48 --out /tmp/structured

Each prompt (MT-Bench, then AlpacaEval dev, as the speed benchmark picks them) is asked through
`ChatDarwin(...).with_structured_output(Answer)`, where `Answer` is a two-field pydantic model (topic, answer).
The same format instructions go into the system message for every method, and every method has the same
max_new_tokens per answer:

- `darwin`: the gated search (3 mutants, keep_top 1, replacement every 16 tokens, the seed sample on). An
  answer that fails to validate loses to every one that validates; a half-written object that still could stays
  above one that cannot.
- `sample`: one plain sample (`method="sample"`), the baseline: what the model does alone with the instructions.
- `best-of-n` (with --methods): 4 plain samples of the original prompt (Darwin's beam count), gated the same.

Figures: valid rate = prompts whose call returned an object (no StructuredOutputError), per method; tokens and
seconds per prompt. The result file records the CPU capability and the torch threads.
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
ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "integrations"))
RUNS = Path(__file__).resolve().parent / "runs"

from benchmarks.speed.speed import add_data_dir, load_prompts  # noqa: E402 - the shared prompt set

SEARCHES = {
    "darwin": dict(method="darwin", mutants=3, keep_top=1, replacement_period=16),
    "sample": dict(method="sample"),
    "best-of-n": dict(method="best-of-n", mutants=4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--methods", default="darwin,sample", help=f"comma-separated, of {', '.join(SEARCHES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--modes", default="constrained,gate",
                        help="constrained (the policy decodes under the schema's grammar), gate (the reward's gate only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="embedded")
    parser.add_argument("--reward", default="default")
    add_data_dir(parser)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from darwin_chains import defaults
    from darwin_chains.cli.record import machine_record
    from pydantic import BaseModel, Field

    from langchain_darwin import ChatDarwin
    from langchain_darwin.structured import StructuredOutputError

    class Answer(BaseModel):
        """A short answer to the user's request."""

        topic: str = Field(description="the request's topic, in a few words")
        answer: str = Field(description="the answer, in one or two sentences")

    prompts = load_prompts(args.prompts, args.data_dir)
    policy = defaults.policy(args.policy)
    reward = defaults.reward(args.reward, policy)
    methods = args.methods.split(",")
    runs = [(m, mode) for m in methods for mode in args.modes.split(",")]
    rows: dict[str, list[dict]] = {f"{m}/{mode}": [] for m, mode in runs}
    start_beams = policy.start
    for method, mode in runs:
        # "gate": the schema is not given to the policy, so only the reward's gate keeps answers valid (as a policy
        # that cannot constrain decoding would run); "constrained": the policy decodes under the schema's grammar.
        policy.start = start_beams if mode == "constrained" else \
            (lambda prompts, n: start_beams([p.constrained(None) for p in prompts], n))
        name = f"{method}/{mode}"
        for i, prompt in enumerate(prompts):
            chat = ChatDarwin(policy=policy, reward=reward, max_new_tokens=args.max_new_tokens, seed=args.seed + i,
                              **SEARCHES[method])
            start = time.perf_counter()
            out = chat.with_structured_output(Answer, include_raw=True).invoke(prompt)
            raw = out["raw"]
            error = out["parsing_error"]
            rows[name].append({
                "prompt": prompt[:120], "valid": out["parsed"] is not None, "seconds": time.perf_counter() - start,
                "tokens": raw.usage_metadata["output_tokens"], "finish_reason": raw.response_metadata["finish_reason"],
                "reward": raw.response_metadata.get("reward"),
                "answer": raw.content, "error": None if error is None else type(error).__name__,
            })
            assert error is None or isinstance(error, StructuredOutputError)
            print(f"{name:22s} {i:2d} valid={rows[name][-1]['valid']!s:5s} {raw.content[:70]!r}", flush=True)

    summary = {m: {"valid": sum(r["valid"] for r in rs), "prompts": len(rs),
                   "valid_rate": sum(r["valid"] for r in rs) / len(rs),
                   "mean_tokens": statistics.mean(r["tokens"] for r in rs),
                   "mean_reward_valid": statistics.mean([r["reward"] for r in rs if r["valid"] and r["reward"] is not None]
                                                        or [float("nan")]),
                   "mean_seconds": statistics.mean(r["seconds"] for r in rs)} for m, rs in rows.items()}
    record = {"meta": {"policy": getattr(policy, "name", args.policy), "reward": getattr(reward, "name", args.reward),
                       "schema": Answer.model_json_schema(), "max_new_tokens": args.max_new_tokens,
                       "searches": {m: SEARCHES[m] for m in methods}, "modes": args.modes.split(","),
                       "seed": args.seed,
                       "threads": torch.get_num_threads(), "machine": machine_record()},
              "summary": summary, "rows": rows}
    out = args.out or RUNS / f"{getattr(policy, 'name', args.policy)}-cpu"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    for m, s in summary.items():
        print(f"{m:22s} valid {s['valid']}/{s['prompts']} ({s['valid_rate']:.0%}), {s['mean_tokens']:.0f} tokens, "
              f"reward {s['mean_reward_valid']:.3f} (valid answers), {s['mean_seconds']:.1f} s a prompt")
    print(f"-> {out / 'results.json'}")


if __name__ == "__main__":
    main()
