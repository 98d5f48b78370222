"""Three grammar engines on the same job: llguidance (what `policies/grammar.py` uses), xgrammar and
outlines-core, each constraining SmolLM2's tokenizer to the structured benchmark's JSON schema.

For each engine: the one-off cost (tokenizer set-up, schema compile), then the per-token cost of what decoding
does at every step (fill the allowed-token mask, accept the sampled token) over real answers, the 20 valid
objects the constrained Darwin run wrote (`runs/smollm2-135m-instruct-cpu-constrained`), and whether the engine
accepts every one of them. The layout is json.dumps's (", " and ": ", no free whitespace), as `grammar.LAYOUT`.

    pip install xgrammar outlines-core      # not dependencies of darwin-chains: only this comparison needs them
    python benchmarks/structured/engines.py --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
SCHEMA = {"description": "A short answer to the user's request.", "properties": {
    "topic": {"description": "the request's topic, in a few words", "title": "Topic", "type": "string"},
    "answer": {"description": "the answer, in one or two sentences", "title": "Answer", "type": "string"}},
    "required": ["topic", "answer"], "title": "Answer", "type": "object"}  # the benchmark's pydantic model


def llguidance_engine(tokenizer: Any, eos: int, schema: str) -> tuple[Callable, Callable]:
    import llguidance
    import llguidance.hf
    import llguidance.torch

    from darwin_chains.policies.grammar import LAYOUT

    info = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos)
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.loads(schema), defaults=LAYOUT)
    mask = llguidance.torch.allocate_token_bitmask(1, info.vocab_size)

    def new() -> Any:
        return llguidance.LLMatcher(info, grammar)

    def step(matcher: Any, token: int) -> bool:
        llguidance.torch.fill_next_token_bitmask(matcher, mask, 0)
        return matcher.consume_token(token)

    return new, step


def xgrammar_engine(tokenizer: Any, eos: int, schema: str) -> tuple[Callable, Callable]:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, stop_token_ids=[eos])
    compiled = xgr.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False, indent=None,
                                                              separators=(", ", ": "), strict_mode=True)
    mask = xgr.allocate_token_bitmask(1, info.vocab_size)

    def new() -> Any:
        return xgr.GrammarMatcher(compiled)

    def step(matcher: Any, token: int) -> bool:
        matcher.fill_next_token_bitmask(mask)
        return matcher.accept_token(token)

    return new, step


def outlines_engine(tokenizer: Any, eos: int, schema: str) -> tuple[Callable, Callable]:
    import torch
    from outlines_core import Guide, Index, Vocabulary, json_schema

    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Vocabulary.from_pretrained asks the model hub; here the map is built from the tokenizer's byte-level tokens.
    to_byte = {c: b for b, c in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    tokens: dict[bytes, list[int]] = {}
    for token, i in tokenizer.get_vocab().items():
        if i not in special:
            tokens.setdefault(bytes(to_byte[c] for c in token), []).append(i)
    regex = json_schema.build_regex_from_schema(schema, whitespace_pattern=r"[ ]?")  # room for ", " and ": "
    index = Index(regex, Vocabulary(eos, tokens))
    mask = torch.zeros((len(tokenizer) + 31) // 32, dtype=torch.int32)

    def new() -> Any:
        return Guide(index)

    def step(guide: Any, token: int) -> bool:
        guide.write_mask_into(mask.data_ptr(), mask.numel(), mask.element_size())
        if token == eos:  # the end: allowed in a final state (its index has no transition for it)
            return index.is_final_state(guide.get_state())
        try:
            guide.advance(token, return_tokens=False)
        except ValueError:  # "No next state found": the token is not allowed here
            return False
        return True

    return new, step


ENGINES = {"llguidance": llguidance_engine, "xgrammar": xgrammar_engine, "outlines-core": outlines_engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="default: runs/engines-<cpu capability>.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer

    from darwin_chains.cli.record import machine_record
    from darwin_chains.embedded import smollm2_dir

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    run = json.loads((HERE / "runs/smollm2-135m-instruct-cpu-constrained/results.json").read_text())
    answers = [r["answer"] for r in run["rows"]["darwin/constrained"] if r["valid"]]
    sequences = [tokenizer(a, add_special_tokens=False)["input_ids"] + [eos] for a in answers]
    schema = json.dumps(SCHEMA, sort_keys=True)  # as Prompt.constrained sends it: "answer" before "topic"
    results: dict[str, Any] = {}
    for name, build in ENGINES.items():
        try:
            started = time.perf_counter()
            new, step = build(tokenizer, eos, schema)
            setup = time.perf_counter() - started
            accepted, per_token, refused = 0, [], []
            for ids in sequences:
                matcher = new()
                started = time.perf_counter()
                ok = all(step(matcher, t) for t in ids)
                per_token.append((time.perf_counter() - started) / len(ids))
                accepted += ok
                if not ok:
                    refused.append(tokenizer.decode(ids)[:160])
            results[name] = {"setup_and_compile_s": round(setup, 3), "accepted": f"{accepted}/{len(sequences)}",
                             "us_per_token_median": round(1e6 * statistics.median(per_token), 1),
                             "us_per_token_max": round(1e6 * max(per_token), 1), "refused": refused}
        except ImportError as exc:
            results[name] = {"error": f"not installed ({exc.name}); pip install xgrammar outlines-core"}
        except Exception as exc:  # noqa: BLE001 - reported beside the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
        print(name, results[name], flush=True)
    out = args.out or HERE / "runs" / f"engines-{torch.backends.cpu.get_cpu_capability().lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"engines": results, "answers": len(sequences), "tokens": sum(map(len, sequences)),
                               "schema": SCHEMA, "machine": machine_record()}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
