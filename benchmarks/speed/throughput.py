"""The engine's decoding throughput against HF `generate`, on the same model, prompts and sampling, side by side.

Each size decodes `rows` real prompts (MT-Bench, then AlpacaEval dev, repeated as needed) for `--tokens` tokens
each, three ways, interleaved `--repeats` times so machine noise hits them alike: the engine batched (the default),
the engine batch invariant (`HFPolicy(batch_invariant=True)`), and `model.generate` with left padding. Every row
decodes all its tokens (end tokens are not honoured, on both sides), so both do the same work; the engine's own
scheduling (rows leaving early) is what `speed.py` measures.

    python benchmarks/speed/throughput.py --threads 2       # -> runs/throughput-<cpu kind>/throughput.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from speed import RUNS, add_data_dir, load_prompts  # noqa: E402


def engine_rate(policy, texts: list[str], tokens: int, seed: int) -> float:
    """Tokens per second of the engine decoding `texts` (prompts encoded inside the timing, as `generate` does)."""
    from darwin_chains import Prompt, Sampling

    started = time.perf_counter()
    beams = policy.start([Prompt.of(t) for t in texts], tokens)
    policy.extend(beams, tokens, Sampling(temperature=0.7, top_p=0.9), seed=seed)
    seconds = time.perf_counter() - started
    assert all(b.tokens == tokens for b in beams), "a row stopped early: end tokens must be ignored here"
    return len(texts) * tokens / seconds


def generate_rate(policy, texts: list[str], tokens: int, seed: int) -> float:
    import torch

    from darwin_chains import Prompt

    ids = [policy.encode(Prompt.of(t)) for t in texts]
    width = max(map(len, ids))
    batch = torch.tensor([[policy.pad_id] * (width - len(i)) + list(i) for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        policy.model.generate(input_ids=batch, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                              do_sample=True, temperature=0.7, top_p=0.9, top_k=0, pad_token_id=policy.pad_id)
    return len(texts) * tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="5,40")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--policy", default=None, help="a model directory (default: the embedded SmolLM2)")
    parser.add_argument("--name", default=None, help="run folder name (default: throughput-<cpu capability>)")
    add_data_dir(parser)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from darwin_chains import HFPolicy
    from darwin_chains.cli.record import machine_name, machine_record
    from darwin_chains.embedded import smollm2_dir

    path = args.policy or smollm2_dir()
    engines = {"batched": HFPolicy.from_pretrained(path), "batch_invariant": None}
    engines["batch_invariant"] = HFPolicy(engines["batched"].model, engines["batched"].tokenizer,
                                          batch_invariant=True)
    for policy in engines.values():
        policy.engine.eos_ids = frozenset()  # every row decodes all its tokens, as generate(min_new_tokens=...) does
    reference = engines["batched"]
    sizes = [int(n) for n in args.rows.split(",")]
    pool = load_prompts(max(sizes), args.data_dir)
    engine_rate(reference, pool[:2], 4, 0)  # warm-up: lazy loading, allocator growth
    generate_rate(reference, pool[:2], 4, 0)

    results = []
    for rows in sizes:
        texts = [pool[i % len(pool)] for i in range(rows)]
        rates: dict[str, list[float]] = {"generate": [], **{name: [] for name in engines}}
        for repeat in range(args.repeats):
            for name, policy in engines.items():
                rates[name].append(engine_rate(policy, texts, args.tokens, repeat))
            rates["generate"].append(generate_rate(reference, texts, args.tokens, repeat))
        median = {name: statistics.median(r) for name, r in rates.items()}
        row = {"rows": rows, "tokens": args.tokens, "tokens_per_s": {k: round(v, 1) for k, v in median.items()},
               "batched_over_generate": round(median["batched"] / median["generate"], 3),
               "batch_invariant_over_generate": round(median["batch_invariant"] / median["generate"], 3),
               "all_tokens_per_s": {k: [round(x, 1) for x in v] for k, v in rates.items()}}
        results.append(row)
        print(json.dumps(row), file=sys.stderr)

    meta = {"policy": reference.name, "dtype": str(reference.model.dtype), "device": str(reference.device),
            "sampling": {"temperature": 0.7, "top_p": 0.9}, "repeats": args.repeats, "machine": machine_record()}
    out = RUNS / (args.name or f"throughput-{machine_name(meta['machine'])}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
