"""Do Darwin's answers keep the prompt's own instructions ("Be brief.") when the mutator adds directions?

RAG prompts over the RAG benchmark's documents and questions (the question's own passage as the context), each
carrying one checkable instruction:

- "Be brief." -> at most 25 words;
- "Answer in one sentence." -> one sentence, on one line;
- "Do not use a list." -> no list lines and no "Step 1".

The instruction sits where users put it: in the system message beside the context, in a hub-style single message
around a marked question (`mark_question`: the request is the question alone), or after the question itself.
Darwin runs with the default settings but 96 new tokens (seed 0) on the embedded SmolLM2-135M-Instruct and the
default reward, twice per prompt with the same seed: with every template whatever the prompt says (`before`:
`TemplateMutator(respect_directions=False)`, the mutator before the check) and with the default template mutator
(`after`: templates that contradict the prompt are left out).

    python benchmarks/rag/instructions.py --threads 1   # writes runs/instructions-<cpu capability>.json (avx512, ...)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "grounding"))
from passages import PASSAGES  # noqa: E402  the documents, shared with the grounding and RAG benchmarks

SETTINGS = dict(max_new_tokens=96, seed=0)  # every other knob at its default
INSTRUCTIONS = ("Be brief.", "Answer in one sentence.", "Do not use a list.")
SHAPES = ("system", "hub", "inline")


def brief(answer: str) -> bool:
    return len(answer.split()) <= 25


def one_sentence(answer: str) -> bool:
    """One line, and no sentence end followed by another sentence (a capital or a digit after ". ")."""
    text = answer.strip()
    return "\n" not in text and len(re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text)) == 1


def no_list(answer: str) -> bool:
    return not re.search(r"^\s*(?:[-*\u2022]|\d+[.)])\s", answer, re.M) and not re.search(r"\bstep\s*\d", answer, re.I)


CHECKS = {"Be brief.": brief, "Answer in one sentence.": one_sentence, "Do not use a list.": no_list}


def load(limit: int) -> list[dict]:
    """`limit` questions spread over the set, each with an instruction and a prompt shape in turn."""
    questions = [json.loads(line) for line in (HERE / "questions.jsonl").read_text().splitlines()]
    step = max(1, len(questions) // limit)
    return [{**q, "instruction": INSTRUCTIONS[i % 3], "shape": SHAPES[(i // 3) % 3]}
            for i, q in enumerate(questions[::step][:limit])]


def prompt_of(case: dict):
    """The prompt in its shape, with the case's instruction where that shape puts it."""
    from darwin_chains import Prompt

    passage, question, instruction = PASSAGES[case["passage"]][1], case["question"], case["instruction"]
    if case["shape"] == "system":
        return Prompt.of([("system", f"Answer the question using only this context. {instruction}\n\n"
                                     f"Context:\n{passage}"), ("user", question)])
    if case["shape"] == "hub":  # what mark_question makes of a hub-style prompt: the request is the question
        return Prompt.of(f"Use the following context to answer the question. {instruction}\n\nContext: {passage}\n\n"
                         f"Question: {question}\n\nAnswer:", request=question)
    return Prompt.of([("system", f"Answer the question using only this context.\n\nContext:\n{passage}"),
                      ("user", f"{question} {instruction}")])


def added(instruction: str, request: str) -> str:
    """What a mutant put around the request ("" for the request itself)."""
    return instruction.replace(request, " ").strip()


def row(case: dict, prompt, result, seconds: float) -> dict:
    """One search's answer, whether it follows the instruction, and what its beams were told."""
    check, trace = CHECKS[case["instruction"]], result.trace
    source = trace.answer_source or ""
    slot = re.fullmatch(r"cycle (\d+) slot (\d+)", source)
    told = trace.cycles[int(slot[1])].instructions[int(slot[2])] if slot else prompt.request
    beams = [{"mutant": added(i, prompt.request), "follows": check(r), "words": len(r.split())}
             for c in trace.cycles for i, r in zip(c.instructions, c.responses)]
    return {"answer": result.answer, "follows": check(result.answer), "words": len(result.answer.split()),
            "finish_reason": result.finish_reason, "answer_source": source,
            "answer_mutant": added(told, prompt.request),
            "beams_following": f"{sum(b['follows'] for b in beams)}/{len(beams)}", "beams": beams,
            "seconds": round(seconds, 1)}


def summary(rows: list[dict]) -> dict:
    """Per run: answers that follow their instruction, and the cycle's final beam responses that do."""
    def beams(subset: list[dict], run: str) -> str:
        counts = [tuple(map(int, r[run]["beams_following"].split("/"))) for r in subset]
        return f"{sum(c[0] for c in counts)}/{sum(c[1] for c in counts)}"

    out = {}
    for run in ("before", "after"):
        follows = sum(r[run]["follows"] for r in rows)
        by = {i: [r for r in rows if r["instruction"] == i] for i in INSTRUCTIONS}
        out[run] = {"follows": follows, "of": len(rows), "share": round(follows / len(rows), 4),
                    "beams_following": beams(rows, run),
                    "by_instruction": {i: f"{sum(r[run]['follows'] for r in s)}/{len(s)}" for i, s in by.items()},
                    "beams_by_instruction": {i: beams(s, run) for i, s in by.items()},
                    "beams_by_mutant": by_mutant([b for r in rows for b in r[run]["beams"]]),
                    "seconds_per_search": round(sum(r[run]["seconds"] for r in rows) / len(rows), 1)}
    return out


def by_mutant(beams: list[dict]) -> dict[str, str]:
    """Beams that followed their instruction, of those decoded from each mutant ("" is the request itself)."""
    mutants = sorted({b["mutant"] for b in beams})
    return {m: f"{sum(b['follows'] for b in beams if b['mutant'] == m)}/{sum(b['mutant'] == m for b in beams)}"
            for m in mutants}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=24, help="how many prompts (spread over questions.jsonl)")
    parser.add_argument("--out", default=None, help="default: runs/instructions-<cpu capability>.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from darwin_chains import Search, SearchConfig, TemplateMutator, defaults
    from darwin_chains.cli.record import machine_record

    policy = defaults.policy("embedded")
    reward = defaults.reward(None, policy)
    config = SearchConfig(**SETTINGS)
    searches = {"before": Search(policy, reward, TemplateMutator(respect_directions=False), config),
                "after": Search(policy, reward, TemplateMutator(), config)}
    capability = torch.backends.cpu.get_cpu_capability().lower()
    out = Path(args.out) if args.out else HERE / "runs" / f"instructions-{capability}.json"
    rows, started = [], time.perf_counter()
    for case in load(args.limit):
        prompt = prompt_of(case)
        entry = {k: case[k] for k in ("id", "question", "instruction", "shape")}
        for name, search in searches.items():
            t = time.perf_counter()
            entry[name] = row(case, prompt, search.run(prompt), time.perf_counter() - t)
        rows.append(entry)
        print(case["id"], case["shape"], case["instruction"], "|",
              *(f"{n}: {entry[n]['follows']} [{entry[n]['answer_mutant'][:30]}] {entry[n]['answer'][:60]!r}"
                for n in searches), flush=True)
        results = {"prompts": len(rows), "summary": summary(rows),
                   "settings": {**SETTINGS, "others": "SearchConfig defaults",
                                "policy": "embedded SmolLM2-135M-Instruct", "reward": "defaults.reward()",
                                "before": "TemplateMutator(respect_directions=False)", "after": "TemplateMutator()",
                                "context": "the question's own passage"},
                   "checks": {"Be brief.": "at most 25 words", "Answer in one sentence.": "one sentence, one line",
                              "Do not use a list.": "no list lines, no 'Step N'"},
                   "seconds": round(time.perf_counter() - started, 1), "machine": machine_record(), "rows": rows}
        out.parent.mkdir(parents=True, exist_ok=True)  # after every prompt, so a long run can be read as it goes
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["summary"]))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
