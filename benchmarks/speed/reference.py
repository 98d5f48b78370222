"""Darwin here against the paper's reference code (declare-lab/darwin), same model, dtype, prompts and settings.

The reference is run as it is published, from a checkout given by `--reference` (nothing of it is copied here),
with three things put around it so that it runs on this machine and does the same work as this project's search:
- its model and tokenizer are the embedded SmolLM2 in fp32 on CPU (it loads fp16 on CUDA by name);
- its reward pipeline is replaced by one that scores 0 and costs nothing, and this project's search gets a reward
  that costs nothing too, so both times are decoding, re-encoding and bookkeeping;
- its `generate` calls are capped to `--max-new-tokens`: the seed sample and the mutation list at that many
  tokens (it asks for 2,048 and 1,024), and its periods of 40 tokens end the beams at the cap with an end token,
  as this project's `max_new_tokens` does.
Both sides: 5 beams from an LLM mutation (the reference's own mutation prompt; this project's `LLMMutator`), a seed
sample, m = 40, top-3, one cycle, temperature 0.7, top-k 40. This project also runs with its default template
mutator (no mutation decoding). The runs of one prompt are interleaved; figures are medians over prompts.

    git clone https://github.com/declare-lab/darwin /tmp/darwin-reference
    python benchmarks/speed/reference.py --reference /tmp/darwin-reference --threads 2   # 256 tokens on 3
                                                       # prompts, 512 on the first; about 15 min, alone
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import RUNS, add_data_dir, load_prompts  # noqa: E402

PERIOD, KEEP_TOP, TOP_K, TEMPERATURE = 40, 3, 40, 0.7


class Capped:
    """The reference's model with its `generate` calls held to `cap` new tokens per beam (see the module doc)."""

    def __init__(self, model, eos_id: int, cap: int):
        self.model, self.eos_id, self.cap, self.decoded = model, eos_id, cap, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def generate(self, **kwargs):
        import torch

        asked = kwargs["max_new_tokens"]
        if asked != PERIOD:  # the seed sample (2,048) or the mutation list (1,024)
            kwargs["max_new_tokens"] = min(asked, self.cap)
            return self.model.generate(**kwargs)
        kwargs["max_new_tokens"] = min(PERIOD, self.cap - self.decoded)
        self.decoded += kwargs["max_new_tokens"]
        out = self.model.generate(**kwargs)
        if self.decoded >= self.cap:  # the beams are at the cap: end them, as a length limit does
            out = torch.cat([out, torch.full((len(out), 1), self.eos_id, dtype=out.dtype)], dim=1)
        return out


class FreeReward:
    """The reference's reward pipeline, scoring every text 0 at no cost."""

    def __call__(self, texts, **kwargs):
        return [[{"score": 0.0}] for _ in texts]


def reference_search(module, utils, model, tokenizer, prompt: str, cap: int, seed: int) -> tuple[float, int]:
    """One reference Darwin run: seconds and the answer's length in tokens."""
    import torch

    darwin = module.Darwin.__new__(module.Darwin)  # its __init__ loads models by hub name; set what it sets
    darwin.tokenizer, darwin.reward_tokenizer = tokenizer, tokenizer
    darwin.model = Capped(model, tokenizer.eos_token_id, cap)
    darwin.device, darwin.model_name = "cpu", "SmolLM2 on the Llama-3 chat path"  # 'Llama-3': its templating
    darwin.archive, darwin.rm_pipe = utils.Archive(prompt), FreeReward()
    darwin.winning_beam_data, darwin.winning_beam, darwin.lc_step = [], None, 5
    darwin.winning_beam_replacement_history = []
    random.seed(seed)
    torch.manual_seed(seed)
    started = time.perf_counter()
    answer = darwin.generate(prompt, iteration=1, replacement_period=PERIOD, top_k=KEEP_TOP,
                             show_generation_process=False)
    return time.perf_counter() - started, len(tokenizer.encode(answer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of declare-lab/darwin")
    parser.add_argument("--runs", default="256:3,512:1",
                        help="max new tokens and how many prompts at that cap, comma-separated (default: 256:3,512:1)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--name", default=None, help="run folder (default: reference-<cpu kind>)")
    add_data_dir(parser)
    args = parser.parse_args()
    if not (args.reference / "darwin.py").is_file():
        parser.error(f"--reference {args.reference} has no darwin.py: give a checkout of declare-lab/darwin")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.reference.resolve()))
    import darwin as module  # the reference's own code
    import utils

    from transformers import AutoTokenizer

    from darwin_chains import LLMMutator, Search, SearchConfig, TemplateMutator, defaults
    from darwin_chains.cli.record import machine_name, machine_record
    from darwin_chains.embedded import smollm2_dir

    policy = defaults.policy("embedded")
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir(), padding_side="left")
    free = lambda instruction, response: 0.0  # noqa: E731 - a reward that costs nothing

    def ours(mutator, cap: int) -> Search:
        config = SearchConfig(mutants=5, replacement_period=PERIOD, keep_top=KEEP_TOP, mutation_cycles=1,
                              max_new_tokens=cap).replace(temperature=TEMPERATURE, top_k=TOP_K, top_p=1.0)
        return Search(policy, free, mutator, config)

    caps = {int(cap): int(n or 3) for cap, _, n in (run.partition(":") for run in args.runs.split(","))}
    prompts = load_prompts(max(caps.values()), args.data_dir)
    # Warm-up: lazy loading and allocator growth, on both sides.
    ours(TemplateMutator(), 8).run("Say hello.")
    reference_search(module, utils, policy.model, tokenizer, "Say hello.", 8, 0)

    meta = {"reference": "declare-lab/darwin darwin.py", "policy": policy.name, "dtype": str(policy.model.dtype),
            "settings": {"beams": 5, "replacement_period": PERIOD, "keep_top": KEEP_TOP, "cycles": 1,
                         "temperature": TEMPERATURE, "top_k": TOP_K, "reward": "free (0, no cost)"},
            "machine": machine_record()}
    out = RUNS / (args.name or f"reference-{machine_name(meta['machine'])}")
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for cap, count in caps.items():
        runs = {"darwin-chains (LLM mutator)": ours(LLMMutator(policy), cap),
                "darwin-chains (template mutator, the default)": ours(TemplateMutator(), cap)}
        rows = []
        for i, prompt in enumerate(prompts[:count]):
            seconds, tokens = reference_search(module, utils, policy.model, tokenizer, prompt, cap, i)
            row = {"prompt": prompt[:80], "reference": {"seconds": round(seconds, 2), "answer_tokens": tokens}}
            for name, search in runs.items():
                result = search.run(prompt, seed=i)
                row[name] = {"seconds": round(result.trace.seconds, 2), "tokens": result.trace.tokens_generated}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            results[str(cap)] = summary(rows, runs)
            (out / "reference.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(json.dumps({"meta": meta, "summary": {c: {k: v for k, v in r.items() if k != "rows"}
                                                for c, r in results.items()}}, indent=2))


def summary(rows: list[dict], runs: dict) -> dict:
    """Per cap: the median speed-up over the reference of each way of running this project, and median seconds."""
    return {
        "speedup_over_reference": {name: round(statistics.median(
            r["reference"]["seconds"] / r[name]["seconds"] for r in rows), 3) for name in runs},
        "median_seconds": {name: statistics.median(r[name]["seconds"] for r in rows) for name in ("reference", *runs)},
        "rows": rows}


if __name__ == "__main__":
    main()
