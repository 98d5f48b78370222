"""How often the default reward prefers a grounded answer to the same answer with one fact changed.

Each case of cases.jsonl (build.py) is scored as a RAG chain asks: the context in the system message, the question
in the user message. Reported, overall, per split and per perturbation kind:

- `with_context`: the default reward (`defaults.reward()`: preference head + groundedness term);
- `blind`: the same head without the groundedness term (`PreferenceReward(grounding=False)`), today's behaviour
  for every reward that reads only the request;
- `swaps`: the same two on the harder set, where the changed value is another one from the same passage;
- `sweep`: the share on dev and test for each weight of the groundedness term, and the weight the rule picks
  (the smallest on the grid within one point of the best dev share; see darwin_chains/rewards/grounding.py).

    python benchmarks/grounding/grounding.py --threads 1 --name avx2-1thread
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
SYSTEM = "Answer the question using only this context.\n\nContext:\n{context}"
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def load(name: str = "cases.jsonl") -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text().splitlines()]


def shares(cases: list[dict], wins: list[bool]) -> dict:
    """Share of wins overall, per split and per kind, with counts."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for case, win in zip(cases, wins):
        for key in ("all", f"split:{case['split']}", f"kind:{case['kind']}"):
            groups[key].append(win)
    return {k: {"share": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(groups.items())}


def pick(sweep: dict[float, dict]) -> float:
    """The smallest weight within one point of the best dev share."""
    best = max(s["dev"] for s in sweep.values())
    return min(w for w, s in sweep.items() if s["dev"] >= best - 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default=None, help="write runs/NAME/results.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from darwin_chains import Prompt, defaults
    from darwin_chains.rewards import PreferenceReward
    from darwin_chains.rewards.grounding import WEIGHT, Groundedness
    from darwin_chains.cli.record import machine_record

    default, blind = defaults.reward(), PreferenceReward(grounding=False)
    lookup = Groundedness(reader=False)

    def scored(cases: list[dict]) -> list[dict]:
        rows = []
        for case in cases:
            prompt = Prompt.of([("system", SYSTEM.format(context=case["context"])), ("user", case["question"])])
            pair = [case["grounded"], case["perturbed"]]
            head = blind.score(prompt, pair)
            rows.append({"with": default.score(prompt, pair), "blind": head,
                         "lookup": [h + g for h, g in zip(head, lookup.score(prompt, pair))],
                         "parts": default.grounding.parts(prompt, pair),
                         "verdicts": [default.grounding.verdict(prompt, a) for a in pair]})
        return rows

    def flags(cases: list[dict], rows: list[dict]) -> dict:
        """How often a verdict is right: the grounded answer passes, the changed one is flagged and lists the
        changed value."""
        n = len(rows)
        passed = sum(r["verdicts"][0].grounded for r in rows)
        flagged = sum(not r["verdicts"][1].grounded for r in rows)
        named = sum(any(c["changed_to"] in u or u in c["changed_to"] for u in r["verdicts"][1].unsupported)
                    for c, r in zip(cases, rows))
        return {"grounded_passed": round(passed / n, 4), "changed_flagged": round(flagged / n, 4),
                "changed_value_listed": round(named / n, 4), "right": round((passed + flagged) / (2 * n), 4), "n": n}

    started = time.perf_counter()
    cases, swaps, crossed = load(), load("swaps.jsonl"), load("crossed.jsonl")
    rows, swap_rows, crossed_rows = scored(cases), scored(swaps), scored(crossed)
    seconds = time.perf_counter() - started

    def harder(cases: list[dict], rows: list[dict], note: str) -> dict:
        return {"cases": len(cases),
                "with_context": shares(cases, [r["with"][0] > r["with"][1] for r in rows]),
                "lookup_only": shares(cases, [r["lookup"][0] > r["lookup"][1] for r in rows])["all"],
                "blind": shares(cases, [r["blind"][0] > r["blind"][1] for r in rows])["all"],
                "verdict": flags(cases, rows),
                "lost_with_context": [c["id"] for c, r in zip(cases, rows) if r["with"][0] <= r["with"][1]],
                "note": note}

    def wins_at(weight: float) -> list[bool]:
        return [b[0] + weight * (p[0][0] - p[0][1]) > b[1] + weight * (p[1][0] - p[1][1])
                for b, p in ((r["blind"], r["parts"]) for r in rows)]

    sweep = {}
    for weight in GRID:
        s = shares(cases, wins_at(weight))
        sweep[weight] = {"dev": s["split:dev"]["share"], "test": s["split:test"]["share"]}
    results = {
        "cases": len(cases),
        "with_context": shares(cases, [r["with"][0] > r["with"][1] for r in rows]),
        "blind": shares(cases, [r["blind"][0] > r["blind"][1] for r in rows]),
        "lost_with_context": [c["id"] for c, r in zip(cases, rows) if r["with"][0] <= r["with"][1]],
        "lookup_only": shares(cases, [r["lookup"][0] > r["lookup"][1] for r in rows])["all"],
        "verdict": flags(cases, rows),
        "swaps": harder(swaps, swap_rows, "a fact changed into another value of its kind from the same passage "
                                          "(swaps.jsonl); not used to pick the weight"),
        "crossed": harder(crossed, crossed_rows, "a fact changed into a value of its kind from another passage of "
                                                 "the same context (crossed.jsonl); not used to pick the weight"),
        "weight": {"shipped": WEIGHT, "picked_on_dev": pick(sweep),
                   "rule": "smallest weight on the grid within 0.01 of the best dev share"},
        "sweep": {str(w): s for w, s in sweep.items()},
        "split": {"dev": sorted({c["passage"] for c in cases if c["split"] == "dev"}),
                  "test": sorted({c["passage"] for c in cases if c["split"] == "test"}),
                  "by": "passage, seeded shuffle in build.py"},
        "seconds_scoring": round(seconds, 1),
        "machine": machine_record(),
    }
    print(json.dumps({k: results[k] for k in ("with_context", "lookup_only", "blind", "verdict", "weight",
                                              "lost_with_context", "swaps", "crossed")},
                     indent=1))
    print("sweep:", json.dumps(results["sweep"]))
    if args.name:
        out = HERE / "runs" / args.name / "results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
