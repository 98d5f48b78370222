"""Method against method on the same prompts, policy, reward and seeds: does the search pay for itself?

    darwin-chains bench --prompts mt-bench:20 alpaca:20 --out runs/bench.jsonl
    darwin-chains bench --prompts my_prompts.jsonl --policy openai:MODEL@http://127.0.0.1:8000/v1 --concurrency 8

Every method answers every prompt with the same seed. Each answer is scored by the reward the search optimised and
by held-out judges that it never saw, so a gain that only the optimised reward sees (reward hacking) shows.
Each finished (prompt, method) is appended to the output file at once: a crash or Ctrl-C loses no finished
work, and running the same command again skips what is already there.

Darwin with 1 and 2 cycles are read off the 3-cycle run: with the same seed its first cycles are exactly those
runs (tests/unit/test_search.py checks this), so their tokens, reward calls and seconds are the first cycles' own.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import SearchConfig
from ..embedded.embedder import UsesEmbedder
from ..errors import ConfigError, InputError
from ..prompt import Prompt
from ..protocols import ascore, component_name
from ..search import Search
from ..trace import SearchResult
from .record import git_commit, machine

log = logging.getLogger(__name__)

#: name -> search settings; "darwin-3" also yields "darwin-1" and "darwin-2".
METHODS: dict[str, dict[str, Any]] = {
    "sample": {"method": "sample"},
    "best-of-5": {"method": "best-of-n", "mutants": 5},
    "best-of-10": {"method": "best-of-n", "mutants": 10},
    "best-of-15": {"method": "best-of-n", "mutants": 15},
    "mutation-best-of-5": {"method": "mutation-best-of-n", "mutants": 5},
    "sample-replace-5": {"method": "sample-replace", "mutants": 5},
    "darwin-3": {"method": "darwin", "mutants": 5, "mutation_cycles": 3},
}


@dataclass
class BenchPrompt:
    id: str
    instruction: str
    source: str
    reference: str | None = None


#: shorthand -> (file in the data folder, source name)
PROMPT_SETS = {"mt-bench": ("mt_bench_questions.jsonl", "mt-bench"), "alpaca": ("alpaca_eval_dev.jsonl", "alpaca")}


def data_folder(data_dir: str | Path | None = None) -> Path:
    """The folder of the shared prompt files: `data_dir`, else $DARWIN_CHAINS_DATA. There is no default: the
    package reads no path it was not given."""
    chosen = data_dir or os.environ.get("DARWIN_CHAINS_DATA")
    if not chosen:
        raise ConfigError("mt-bench and alpaca prompts are read from a data folder: pass --data-dir FOLDER "
                          "(with mt_bench_questions.jsonl and alpaca_eval_dev.jsonl) or set DARWIN_CHAINS_DATA")
    return Path(chosen)


def load_prompts(specs: Sequence[str], data_dir: str | Path | None = None) -> list[BenchPrompt]:
    """`mt-bench[:N]` (first turns), `alpaca[:N]` (AlpacaEval dev), both from `data_folder(data_dir)`, or a JSONL
    file of instructions.

    A file's rows need an instruction under `instruction`, `prompt` or `turns[0]`; `id` and `reference` (or
    `reference_output`) are optional.
    """
    prompts: list[BenchPrompt] = []
    for spec in specs:
        name, _, count = spec.partition(":")
        limit = int(count) if count else None
        if name in PROMPT_SETS:
            file, source = PROMPT_SETS[name]
            path = data_folder(data_dir) / file
        else:
            path, source = Path(spec), Path(spec).stem
            limit = None
        if not path.exists():
            raise InputError(f"prompt file {path} does not exist (set --data-dir or DARWIN_CHAINS_DATA)")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for i, row in enumerate(rows[:limit]):
            text = row.get("instruction") or row.get("prompt") or (row.get("turns") or [None])[0]
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{path} row {i + 1} has no instruction (expected 'instruction', 'prompt' or 'turns')")
            ident = row.get("id", row.get("question_id", i))
            reference = row.get("reference_output") or row.get("reference")
            prompts.append(BenchPrompt(f"{source}-{ident}", text, source,
                                       reference if isinstance(reference, str) else None))
    return prompts


class ReferenceSimilarity(UsesEmbedder):
    """A held-out judge for prompts with a reference answer: cosine similarity to it in MiniLM space."""

    name = "reference-similarity"

    def judge(self, reference: str, answer: str) -> float:
        return self.embedder.similarity(reference, [answer])[0]


class Bench:
    """Runs `methods` over prompts and appends one JSON row per (prompt, method) to `out`."""

    def __init__(self, policy: Any, reward: Any, mutator: Any, judges: dict[str, Any], out: Path,
                 methods: Sequence[str] = tuple(METHODS), base: SearchConfig | None = None):
        unknown = set(methods) - set(METHODS)
        if unknown:
            raise ConfigError(f"unknown bench method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}")
        self.policy, self.reward, self.mutator, self.judges = policy, reward, mutator, judges
        self.methods, self.base, self.out = list(methods), base or SearchConfig(), Path(out)
        self.traces = self.out.with_suffix(".traces.jsonl")
        self.settings_file = self.out.with_suffix(".settings.json")

    def settings(self) -> dict[str, Any]:
        """What the results depend on. A rerun must match them, so one output file never mixes two setups."""
        return {"config": self.base.to_dict(), "policy": component_name(self.policy),
                "reward": component_name(self.reward), "mutator": component_name(self.mutator)}

    def _record_settings(self) -> None:
        current = json.loads(json.dumps(self.settings()))  # as saved: tuples read back as lists
        if self.settings_file.exists():
            saved = json.loads(self.settings_file.read_text())
            changed = [key for key in current if saved.get(key) != current[key]]
            if changed:
                raise ConfigError(f"{self.out} was started with a different {', '.join(changed)} "
                                  f"(see {self.settings_file}); use a new --out or the same settings")
            return
        record = {**current, "methods": {m: METHODS[m] for m in self.methods}, "judges": sorted(self.judges),
                  "commit": git_commit(), "machine": machine()}
        self.settings_file.write_text(json.dumps(record, indent=2) + "\n")

    def done(self) -> set[tuple[str, str]]:
        """(prompt id, method) pairs already in the output file."""
        if not self.out.exists():
            return set()
        finished = set()
        for line in self.out.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a line cut short by a crash: that prompt runs again
                continue
            finished.add((row["prompt_id"], row["method"]))
        return finished

    async def run(self, prompts: Sequence[BenchPrompt], concurrency: int = 1, progress: Any = None) -> int:
        """Run what is not done yet, `concurrency` prompts at a time; returns the number of rows written.

        The prompts in flight search side by side (a local policy decodes their beams as one batch), so a
        search's seconds depend on what else is in flight."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._record_settings()
        finished = self.done()
        gate = asyncio.Semaphore(max(1, concurrency))
        written = 0

        async def one(prompt: BenchPrompt) -> None:
            nonlocal written
            async with gate:
                for method in self.methods:
                    names = _row_names(method)
                    if all((prompt.id, n) in finished for n in names):
                        continue
                    rows, trace = await self._measure(prompt, method)
                    # No await until the rows are written, so two prompts' rows never interleave.
                    _append(self.out, rows)
                    if trace is not None:
                        _append(self.traces, [trace])
                    written += len(rows)
                    if progress is not None:
                        progress(prompt, method)

        await asyncio.gather(*(one(p) for p in prompts))
        return written

    async def _measure(self, prompt: BenchPrompt, method: str) -> tuple[list[dict], dict | None]:
        seed = zlib.crc32(prompt.id.encode()) & 0x7FFFFFFF  # the same seed for every method on a prompt
        config = self.base.replace(seed=seed, **METHODS[method])
        search = Search(self.policy, self.reward, self.mutator if config.mutates else None, config)
        result = await search.arun(prompt.instruction)
        rows = []
        if method == "darwin-3":
            for cycles in range(1, len(result.trace.cycles) + 1):
                rows.append(await self._row(prompt, f"darwin-{cycles}", *_after_cycles(result, cycles)))
            trace = {"prompt_id": prompt.id, "instruction": prompt.instruction, "trace": result.trace.to_dict()}
            return rows, trace
        t = result.trace
        rows.append(await self._row(prompt, method, result.answer, result.reward,
                                    {"tokens_generated": t.tokens_generated, "reward_calls": t.reward_calls,
                                     "seconds": t.seconds}))
        return rows, None

    async def _row(self, prompt: BenchPrompt, method: str, answer: str, reward: float, cost: dict) -> dict:
        judged = {}
        for name, judge in self.judges.items():
            if isinstance(judge, ReferenceSimilarity):
                if prompt.reference is not None:
                    judged[name] = await asyncio.to_thread(judge.judge, prompt.reference, answer)
            else:
                (judged[name],) = await ascore(judge, Prompt.of(prompt.instruction), [answer])
        return {"prompt_id": prompt.id, "source": prompt.source, "method": method, "reward": reward,
                "judges": judged, **cost, "answer_chars": len(answer), "answer_words": len(answer.split()),
                "answer": answer}


def showcase(traces: Sequence[dict]) -> dict:
    """The Darwin search that shows the method best: won by a mutated instruction, with the most replacements."""
    def telling(row: dict) -> tuple[bool, int]:
        trace = row["trace"]
        source = trace.get("answer_source") or ""
        mutant_won = False
        if source.startswith("cycle "):
            _, cycle, _, slot = source.split()
            mutant_won = trace["cycles"][int(cycle)]["instructions"][int(slot)] != trace["prompt"]["request"]
        return mutant_won, sum(len(p["replacements"]) for c in trace["cycles"] for p in c["periods"])

    return max(traces, key=telling)


def _row_names(method: str) -> list[str]:
    return [f"darwin-{c}" for c in (1, 2, 3)] if method == "darwin-3" else [method]


def _after_cycles(result: SearchResult, cycles: int) -> tuple[str, float, dict]:
    """The answer and cost of the same search stopped after `cycles` cycles."""
    trace = result.trace
    pool = [(c.final_rewards[i], c.responses[i]) for c in trace.cycles[:cycles] for i in range(len(c.responses))]
    if trace.seed_sample is not None:
        pool.append((trace.seed_sample.reward, trace.seed_sample.response))
    reward, answer = max(pool, key=lambda x: x[0])
    kept = trace.cycles[:cycles]
    return answer, reward, {"tokens_generated": sum(c.tokens_generated for c in kept),
                            "reward_calls": sum(c.reward_calls for c in kept),
                            "seconds": sum(c.seconds for c in kept)}


def _append(path: Path, rows: list[dict]) -> None:
    if path.exists() and path.stat().st_size:  # a crash can leave a torn last line: end it first
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_rows(path: Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def summarize(rows: list[dict], baseline: str = "best-of-5") -> dict[str, dict]:
    """Per method: means of reward, judges, cost and length, and paired win rates against the baseline."""
    by_method: dict[str, list[dict]] = {}
    for row in rows:
        by_method.setdefault(row["method"], []).append(row)
    base = {r["prompt_id"]: r for r in by_method.get(baseline, [])}
    judges = sorted({j for r in rows for j in r["judges"]})
    summary = {}
    for method, group in by_method.items():
        entry: dict[str, Any] = {"prompts": len(group)}
        for key in ("reward", "tokens_generated", "reward_calls", "seconds", "answer_words"):
            entry[key] = statistics.fmean(r[key] for r in group)
        entry["reward_sem"] = _sem([r["reward"] for r in group])
        for j in judges:
            values = [r["judges"][j] for r in group if j in r["judges"]]
            if values:
                entry[f"judge:{j}"] = statistics.fmean(values)
                entry[f"judge:{j}:sem"] = _sem(values)
        paired = [(r, base[r["prompt_id"]]) for r in group if r["prompt_id"] in base]
        if paired and method != baseline:
            entry[f"reward_win_rate_vs_{baseline}"] = _win_rate([(a["reward"], b["reward"]) for a, b in paired])
            for j in judges:
                pairs = [(a["judges"][j], b["judges"][j]) for a, b in paired if j in a["judges"] and j in b["judges"]]
                if pairs:
                    entry[f"judge:{j}:win_rate_vs_{baseline}"] = _win_rate(pairs)
        summary[method] = entry
    order = [m for m in METHODS if m != "darwin-3"] + ["darwin-1", "darwin-2", "darwin-3"]
    return dict(sorted(summary.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def _sem(values: list[float]) -> float:
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0


def _win_rate(pairs: list[tuple[float, float]]) -> float:
    """Share of prompts where the method beats the baseline; ties count half."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)


def markdown(summary: dict[str, dict], baseline: str = "best-of-5") -> str:
    """The summary as a markdown table."""
    judges = sorted({k.split(":")[1] for s in summary.values() for k in s if k.startswith("judge:")})
    head = ["method", "prompts", "reward", f"reward wins vs {baseline}"]
    for j in judges:
        head += [j, f"{j} wins vs {baseline}"]
    head += ["tokens", "reward calls", "seconds", "words"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, s in summary.items():
        cells = [method, str(s["prompts"]), f"{s['reward']:.3f} ± {s['reward_sem']:.3f}",
                 _pct(s.get(f"reward_win_rate_vs_{baseline}"))]
        for j in judges:
            value = s.get(f"judge:{j}")
            cells += [f"{value:.3f} ± {s[f'judge:{j}:sem']:.3f}" if value is not None else "",
                      _pct(s.get(f"judge:{j}:win_rate_vs_{baseline}"))]
        cells += [f"{s['tokens_generated']:.0f}", f"{s['reward_calls']:.1f}", f"{s['seconds']:.1f}",
                  f"{s['answer_words']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"
