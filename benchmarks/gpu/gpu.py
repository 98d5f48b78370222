"""The local engine on a GPU: throughput against HF `generate`, batched attention against the row loop, Darwin
against Best-of-5, concurrency, the out-of-memory split and determinism, on random-weight models of real shapes.

A GPU machine here has torch (CUDA) and transformers but no model hub and no downloads, and the embedded GGUF
cannot travel there, so the models are built from their configs with random weights (SmolLM2-135M's shape in its
policy dtype, and a Llama-3-8B-shaped one in bf16) and a synthetic word-level tokenizer of the same vocabulary
size. Random weights rarely emit the end token, so every beam runs its full length: the figures are decoding
speed and memory, not answer quality. The reward costs nothing (distinct-word share), so a search's time is the
engine's.

    bash benchmarks/gpu/run.sh                      # on the GPU: both shapes, at most about 8 minutes
    python benchmarks/gpu/gpu.py --small --out x.json   # on CPU, tiny shapes: what the test suite runs

Each section records its own error instead of ending the run, so one failure still leaves the other figures.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import traceback
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192, rope_theta=100000.0,
                         tie_word_embeddings=True),
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                      tie_word_embeddings=False),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=2048),
}
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>", "system", "user", "assistant"]
TEMPLATE = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
            "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")


def tokenizer(vocab_size: int) -> Any:
    """A word-level tokenizer with `vocab_size` entries ("w7" is id 7 past the specials); unknown words are <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL)}
    vocab.update({f"w{i}": i for i in range(len(SPECIAL), vocab_size)})
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>", model_max_length=8192)
    tok.chat_template = TEMPLATE
    return tok


def policy(shape: str, device: str, dtype: Any, max_batch_rows: int = 256) -> Any:
    """An HFPolicy over a random-weight Llama of `shape`, built on `device` (fast, even at 8B)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from darwin_chains import HFPolicy

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype)
    return HFPolicy(model.eval(), tokenizer(config.vocab_size), name=f"random-{shape}", max_batch_rows=max_batch_rows)


def prompts(n: int, words: int, vocab_size: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(len(SPECIAL), vocab_size)}" for _ in range(words)) for _ in range(n)]


def reward(instruction: str, response: str) -> float:
    """Distinct-word share: costs nothing, so a search's time is the policy's."""
    words = response.split()
    return len(set(words)) / (1 + len(words))


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def throughput(pol: Any, device: str, rows: int, tokens: int, words: int) -> dict[str, Any]:
    """Tokens per second decoding `rows` prompts `tokens` tokens each: the engine against HF `generate`."""
    import torch

    from darwin_chains import Prompt, Sampling

    texts = prompts(rows, words, pol.model.config.vocab_size, seed=rows)
    sync(device)
    started = time.perf_counter()
    beams = pol.start([Prompt.of(t) for t in texts], tokens)
    pol.extend(beams, tokens, Sampling(), seed=1)
    sync(device)
    engine_s = time.perf_counter() - started
    engine_tokens = sum(b.tokens for b in beams)
    ids = [pol.encode(Prompt.of(t)) for t in texts]
    width = max(map(len, ids))
    batch = torch.tensor([[pol.pad_id] * (width - len(i)) + list(i) for i in ids], device=pol.model.device)
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=pol.model.device)
    sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        pol.model.generate(input_ids=batch, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                           do_sample=True, temperature=0.7, top_p=0.9, pad_token_id=pol.pad_id)
    sync(device)
    generate_s = time.perf_counter() - started
    return {"rows": rows, "tokens": tokens, "engine_tokens_per_s": round(engine_tokens / engine_s, 1),
            "generate_tokens_per_s": round(rows * tokens / generate_s, 1),
            "engine_over_generate": round((engine_tokens / engine_s) / (rows * tokens / generate_s), 3)}


def attention_paths(pol: Any, device: str, rows: int, tokens: int, words: int) -> dict[str, Any]:
    """The engine's two attention paths on the same model: one batched SDPA call a step (the default)
    against the batch-invariant row loop, padded to 4 rows (`attention.py`)."""
    from darwin_chains import HFPolicy, Prompt, Sampling

    out = {}
    for invariant in (False, True):
        engine = HFPolicy(pol.model, pol.tokenizer, name=pol.name, batch_invariant=invariant)
        texts = prompts(rows, words, pol.model.config.vocab_size, seed=7)
        sync(device)
        started = time.perf_counter()
        beams = engine.start([Prompt.of(t) for t in texts], tokens)
        engine.extend(beams, tokens, Sampling(), seed=1)
        sync(device)
        out["row_loop" if invariant else "batched"] = round(sum(b.tokens for b in beams) / (time.perf_counter()
                                                                                           - started), 1)
    return {"rows": rows, "tokens_per_s": out, "batched_over_row_loop": round(out["batched"] / out["row_loop"], 3)}


def searches(pol: Any, n_prompts: int, tokens: int, words: int, concurrent: int) -> dict[str, Any]:
    """Darwin against Best-of-5 (median over prompts), and `concurrent` seeded searches one after another
    against all at once, with whether each answer is the same both ways."""
    from darwin_chains import Search, SearchConfig, TemplateMutator

    def search(method: str) -> Any:
        return Search(pol, reward, TemplateMutator(), SearchConfig(method=method, max_new_tokens=tokens, seed=3))

    texts = prompts(max(n_prompts, concurrent), words, pol.model.config.vocab_size, seed=99)
    ratios = []
    for text in texts[:n_prompts]:
        started = time.perf_counter()
        search("darwin").run(text)
        darwin_s = time.perf_counter() - started
        started = time.perf_counter()
        search("best-of-n").run(text)
        ratios.append(darwin_s / (time.perf_counter() - started))
    started = time.perf_counter()
    alone = [search("darwin").run(t).answer for t in texts[:concurrent]]
    sequential_s = time.perf_counter() - started

    async def together() -> list[str]:
        return [r.answer for r in await asyncio.gather(*(search("darwin").arun(t) for t in texts[:concurrent]))]

    started = time.perf_counter()
    beside = asyncio.run(together())
    concurrent_s = time.perf_counter() - started
    return {"darwin_over_best_of_5": [round(r, 3) for r in ratios],
            "darwin_over_best_of_5_median": round(statistics.median(ratios), 3),
            "searches": concurrent, "sequential_s": round(sequential_s, 2), "concurrent_s": round(concurrent_s, 2),
            "concurrent_over_sequential": round(concurrent_s / sequential_s, 3),
            "same_answer_alone_and_beside_others": sum(a == b for a, b in zip(alone, beside))}


def out_of_memory(pol: Any, words: int, start_rows: int, limit_s: float, simulate_at: int | None = None
                  ) -> dict[str, Any]:
    """Push rows until the GPU runs out of memory: the engine must halve its batch and still finish every row.
    `simulate_at` (CPU, small mode): a forward pass of that many rows or more raises CUDA's out-of-memory error,
    to run the same path where there is no GPU memory to exhaust."""
    import torch

    from darwin_chains import Prompt, Sampling

    if simulate_at is not None:
        forward = pol.model.forward

        def tight(*args, **kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None and ids.shape[0] >= simulate_at:
                raise torch.cuda.OutOfMemoryError("simulated: CUDA out of memory")
            return forward(*args, **kwargs)

        pol.model.forward = tight

    rows, found = start_rows, None
    started = time.perf_counter()
    while time.perf_counter() - started < limit_s:
        texts = prompts(rows, words, pol.model.config.vocab_size, seed=rows)
        beams = pol.start([Prompt.of(t) for t in texts], 8)
        pol.extend(beams, 8, Sampling(), seed=1)
        finished = sum(b.tokens == 8 or b.finished for b in beams)
        if pol.engine._limit < rows:
            found = {"rows_asked": rows, "limit_after": pol.engine._limit, "rows_finished": finished}
            break
        rows *= 2
    if simulate_at is not None:
        pol.model.forward = forward
        found = (found or {}) | {"simulated_at_rows": simulate_at}
    return found or {"rows_asked": rows, "note": f"no out-of-memory error within {limit_s:.0f} s"}


def section(results: dict, name: str, run: Callable[[], Any]) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        results[name] = run()
    except Exception as exc:  # noqa: BLE001 - recorded; the other sections still run
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    results.setdefault("seconds", {})[name] = round(time.perf_counter() - started, 1)
    results.setdefault("peak_gib", {})[name] = round(peak, 2) if peak is not None else None
    print(name, json.dumps(results[name])[:400], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes on this machine's CPU (the suite's mode)")
    parser.add_argument("--shapes", default="smollm2-135m,llama3-8b")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch

    from darwin_chains.cli.record import machine_record

    device = "cuda" if torch.cuda.is_available() and not args.small else "cpu"
    plan = ({"tiny": dict(dtype=torch.float32, rows=(2, 5), tokens=16, words=12, prompts=2, search_tokens=16,
                          concurrent=3, oom=True)} if args.small else {
        "smollm2-135m": dict(dtype=torch.bfloat16, rows=(5, 40, 128), tokens=128, words=64, prompts=3,
                             search_tokens=256, concurrent=8, oom=False),
        "llama3-8b": dict(dtype=torch.bfloat16, rows=(5, 40, 128), tokens=64, words=64, prompts=3,
                          search_tokens=128, concurrent=8, oom=True)})
    if not args.small:
        plan = {k: v for k, v in plan.items() if k in args.shapes.split(",")}
    results: dict[str, Any] = {"device": device, "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                               "weights": "random, real shapes (no model hub on the GPU machine)",
                               "machine": machine_record(), "shapes": {}}
    for shape, p in plan.items():
        out: dict[str, Any] = {"dtype": str(p["dtype"]).removeprefix("torch.")}
        pol = policy(shape, device, p["dtype"], max_batch_rows=10**6 if p["oom"] else 256)
        for rows in p["rows"]:
            section(out, f"throughput_{rows}_rows", lambda: throughput(pol, device, rows, p["tokens"], p["words"]))
        for rows in p["rows"][:2]:
            section(out, f"attention_paths_{rows}_rows",
                    lambda: attention_paths(pol, device, rows, p["tokens"], p["words"]))
        section(out, "searches", lambda: searches(pol, p["prompts"], p["search_tokens"], p["words"], p["concurrent"]))
        if p["oom"]:
            section(out, "out_of_memory", lambda: out_of_memory(pol, 8, 2, limit_s=30, simulate_at=8) if args.small
                    else out_of_memory(pol, 1024, 512, limit_s=150))
        results["shapes"][shape] = out
        del pol
        if device == "cuda":
            torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
