"""Peak memory of `darwin-chains serve` against the prompt's length: one request, a fresh server each time.

A long prompt is encoded `PREFILL_CHUNK` tokens at a time (`policies/engine.py`), so attention's scratch space
no longer grows with the square of the prompt; what still grows with it is the cache every beam keeps (prompt and
answer, per beam, linear). For each prompt length the script starts a fresh server of the embedded SmolLM2
(`--max-prompt-tokens` and the time cap raised past the longest), waits for /health (models loaded), reads its resident
memory, sends one chat request whose user message has that many SmolLM2 tokens (5 mutants and the seed sample,
8 new tokens), and reads the peak resident memory (VmHWM) after it. Run from the repository root, alone:

    python benchmarks/serve/memory.py          # -> benchmarks/serve/runs/memory/<machine>.json
    python benchmarks/serve/memory.py --lengths 256 1024 --out /tmp/memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs" / "memory"
PARAGRAPH = ("The committee reviewed the annual budget line by line, noting where spending rose and where it fell, "
             "and asked each department to explain its largest changes in plain words. ")


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def prompt_of(tokenizer, tokens: int) -> str:
    ids = tokenizer.encode(PARAGRAPH * (tokens // 20 + 1), add_special_tokens=False)[:tokens]
    return tokenizer.decode(ids) + "\nSummarise the text above in one sentence."


def measure(tokens: int, text: str, threads: int, timeout: float, serve_args: list[str]) -> dict:
    import httpx

    from tests.integration.servers import free_port, stop, wait_ready

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(port), *serve_args],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/health", timeout, server)
        ready_kb, ready_peak_kb = rss_kb(server.pid, "VmRSS"), rss_kb(server.pid, "VmHWM")
        body = {"model": "darwin", "messages": [{"role": "user", "content": text}], "max_tokens": 8, "seed": 0}
        asked = time.monotonic()
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=timeout)
        seconds = time.monotonic() - asked
        return {"prompt_tokens": tokens, "status": reply.status_code,
                "usage": reply.json().get("usage") if reply.status_code == 200 else reply.text[:300],
                "rss_ready_mb": round(ready_kb / 1024), "peak_before_request_mb": round(ready_peak_kb / 1024),
                "peak_mb": round(rss_kb(server.pid, "VmHWM") / 1024), "seconds": round(seconds, 1)}
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 2048, 4096, 8000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--serve-args", default="--max-prompt-tokens 16384 --max-held-tokens 1000000 "
                                                  "--max-search-seconds 3600",
                        help="flags for darwin-chains serve (default: caps raised past the longest prompt)")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/memory/<machine>.json")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from darwin_chains.cli.record import machine_name, machine_record
    from darwin_chains.embedded import smollm2_dir
    from darwin_chains.policies.engine import PREFILL_CHUNK

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    rows = []
    for tokens in args.lengths:
        rows.append(measure(tokens, prompt_of(tokenizer, tokens), args.threads, args.timeout, args.serve_args.split()))
        print(json.dumps(rows[-1]), flush=True)
    report = {"what": "peak resident memory (VmHWM) of a fresh darwin-chains serve (embedded SmolLM2, default "
                      "reward and mutator: 5 mutants and the seed sample) for one request of 8 new tokens, by the "
                      "prompt's SmolLM2 tokens", "prefill_chunk": PREFILL_CHUNK, "rows": rows,
              "serve_args": args.serve_args, "machine": machine_record()}
    out = args.out or RUNS / f"{machine_name(report['machine'])}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
