"""Load on `darwin-chains serve`: 16 concurrent clients, 4 of which disconnect; 16 at once against 1 alone.

    nice -n 10 python benchmarks/serve/serve_load.py                      # -> runs/small-llama-cpu/results.json
    python benchmarks/serve/serve_load.py --scenario concurrency          # -> runs/embedded-cpu/results.json

Scenario `leavers` (the default): a real `darwin-chains serve` subprocess on loopback serves a small random Llama
policy and reward model (built and saved here, so the run needs no download, and every response runs to
`max_new_tokens`). Four phases on the same server, with the same seeds per client:

- `leavers_alone`: only the 4 leavers; once they have gone, the server should be idle;
- `baseline`: only the 12 clients that stay;
- `abandon`: the 4 leavers start first (they hold the 4 running places), disconnect once the server has scored
  `--leave-at` replacement periods (a quarter of their work), and the 12 stay to their answers;
- `complete`: all 16 stay, what the 4 would have cost had their searches run to the end.

Searches are seeded per client, so a phase's work is the same every time. The replacement periods the server
scored (from /metrics) show where the work went: if cancellation wastes nothing after the disconnect, `abandon`
scores exactly the baseline's periods plus those the leavers scored before they left. The server's CPU seconds
(from /proc) say the same, within the noise of a shared machine.

Scenario `concurrency`: does a local model's server gain from running searches at once? A real `darwin-chains
serve` of the embedded SmolLM2 (default reward, template mutator; 5 beams, m = 40, top-3, 128 new tokens) with
`--max-concurrent` and `--max-queue` at the client count, so every request runs at once and their beams share
one batch. Through the real `openai` client: 1 request alone, then 16 at once, each seeded by its index, with
distinct prompts embedded here.

- throughput ratio = (16 requests' completion tokens / wall seconds until the last answer) / (the lone request's
  completion tokens / its latency) (target >= 3);
- first-answer ratio = latency of the first of the 16 answers / the lone request's latency (target <= 2);
- every request answered (200).

Completion tokens are the reply's `usage.completion_tokens`: every token the search sampled. The machine record is
the client process's; the server runs with OMP_NUM_THREADS=--server-threads (1 unless told).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from darwin_chains.cli.record import machine_record  # noqa: E402


def build_models(folder: Path, hidden: int, layers: int) -> tuple[Path, Path]:
    """A random Llama causal LM and a reward model of the same shape, with the tests' small BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    from tests.conftest import build_tokenizer

    tokenizer = build_tokenizer()
    config = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  bos_token_id=tokenizer.bos_token_id)
    paths = folder / "policy", folder / "reward"
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**config, tie_word_embeddings=True)).save_pretrained(paths[0])
    LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1)).save_pretrained(paths[1])
    for path in paths:
        tokenizer.save_pretrained(path)
    return paths


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(base: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def body(i: int) -> dict:
    return {"model": "darwin", "seed": i, "messages": [{"role": "user", "content": f"Give three tips, number {i}."}]}


def leave(port: int, i: int, go: threading.Event) -> None:
    """A client that sends its request and disconnects once `go` is set."""
    data = json.dumps(body(i)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        go.wait(600)


def phase(base: str, port: int, pid: int, stay: int, leavers: int, periods: int) -> dict:
    """One round of clients; CPU and metrics deltas, and each staying client's status and seconds.

    The leavers disconnect once the server has scored `periods` replacement periods (theirs: they hold every
    running place), so they leave mid-search however fast the machine is.
    """
    metrics0, cpu0, t0 = scrape(base), cpu_seconds(pid), time.monotonic()
    marks: dict[str, float] = {}
    go = threading.Event()

    def staying(i: int) -> tuple[int, float]:
        started = time.monotonic()
        reply = httpx.post(f"{base}/v1/chat/completions", json=body(i), timeout=600)
        return reply.status_code, time.monotonic() - started

    with ThreadPoolExecutor(stay + leavers) as pool:
        gone = [pool.submit(leave, port, 100 + i, go) for i in range(leavers)]
        time.sleep(0.3 if leavers else 0)  # the leavers take the running places first
        held = [pool.submit(staying, i) for i in range(stay)]
        if leavers:
            deadline = time.monotonic() + 300
            while scrape(base)["darwin_periods_total"] - metrics0["darwin_periods_total"] < periods:
                assert time.monotonic() < deadline, "the leavers' searches made no progress"
                time.sleep(0.05)
            marks["periods_before_leaving"] = scrape(base)["darwin_periods_total"] - metrics0["darwin_periods_total"]
            marks["cpu_before_leaving_s"] = cpu_seconds(pid) - cpu0
            marks["left_after_s"] = time.monotonic() - t0
            go.set()
            for f in gone:
                f.result()
            if not stay:  # alone on the server: what it spends once they have gone is waste
                left = cpu_seconds(pid)
                time.sleep(3.0)
                marks["cpu_3s_after_leaving_s"] = cpu_seconds(pid) - left
        answers = [f.result() for f in held]
    wall, cpu1 = time.monotonic() - t0, cpu_seconds(pid)
    time.sleep(1.0)
    metrics1 = scrape(base)
    delta = {k: round(metrics1[k] - metrics0.get(k, 0.0), 3) for k in metrics1
             if k.startswith(("darwin_searches_total", "darwin_periods_total", "darwin_tokens_total",
                              "darwin_reward_calls_total"))}
    return {"clients": stay + leavers, "leavers": leavers, "answered": sum(s == 200 for s, _ in answers),
            "statuses": sorted({s for s, _ in answers}), "wall_s": round(wall, 2),
            "server_cpu_s": round(cpu1 - cpu0, 2), "server_cpu_idle_after_s": round(cpu_seconds(pid) - cpu1, 2),
            "latency_s": {"median": round(sorted(s for _, s in answers)[len(answers) // 2], 2),
                          "max": round(max(s for _, s in answers), 2)} if answers else None,
            **{k: round(v, 2) for k, v in marks.items()}, "metrics": delta}


@contextmanager
def serving(command: list[str], threads: int):
    """A `darwin-chains serve` subprocess on a free loopback port, healthy before it is handed over."""
    port = socket.create_server(("127.0.0.1", 0)).getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(port), *command],
                              env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            assert server.poll() is None, f"the server exited with {server.returncode}"
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield base, port, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def leavers(args: argparse.Namespace) -> tuple[dict, dict]:
    """16 clients, 4 of which disconnect: does the server stop spending on the searches nobody waits for?"""
    search = args.search if args.search is not None else [
        "--mutants", "2", "--keep-top", "1", "--max-new-tokens", "96", "--replacement-period", "8"]
    with tempfile.TemporaryDirectory() as tmp:
        policy, reward = build_models(Path(tmp), args.hidden, args.layers)
        command = ["--policy", str(policy), "--reward", f"hf:{reward}", "--mutator", "template", "--max-concurrent",
                   str(args.max_concurrent), "--max-queue", "16", *search]
        with serving(command, args.server_threads) as (base, port, pid):
            warm = httpx.post(f"{base}/v1/chat/completions", json=body(999), timeout=600).json()
            stay = args.clients - args.leavers
            phases = {"leavers_alone": phase(base, port, pid, 0, args.leavers, args.leave_at),
                      "baseline": phase(base, port, pid, stay, 0, args.leave_at),
                      "abandon": phase(base, port, pid, stay, args.leavers, args.leave_at),
                      "complete": phase(base, port, pid, args.clients, 0, args.leave_at)}
    abandon, baseline, complete = phases["abandon"], phases["baseline"], phases["complete"]
    periods = "darwin_periods_total"
    summary = {
        "every_staying_client_answered": abandon["answered"] == stay,
        "leavers_periods_before_leaving": abandon["periods_before_leaving"],
        "leavers_periods_in_all": abandon["metrics"][periods] - baseline["metrics"][periods],
        "leavers_periods_after_disconnect": abandon["metrics"][periods] - baseline["metrics"][periods]
        - abandon["periods_before_leaving"],
        "leavers_periods_had_they_stayed": complete["metrics"][periods] - baseline["metrics"][periods],
        "leavers_alone_cpu_before_leaving_s": phases["leavers_alone"]["cpu_before_leaving_s"],
        "leavers_alone_cpu_3s_after_leaving_s": phases["leavers_alone"]["cpu_3s_after_leaving_s"],
        "leavers_alone_periods_in_all": phases["leavers_alone"]["metrics"][periods],
        "leavers_cpu_before_leaving_s": abandon["cpu_before_leaving_s"],
        "abandon_minus_baseline_cpu_s": round(abandon["server_cpu_s"] - baseline["server_cpu_s"], 2),
        "complete_minus_baseline_cpu_s": round(complete["server_cpu_s"] - baseline["server_cpu_s"], 2),
    }
    return summary, {"command": " ".join(["darwin-chains", "serve", *command]),
                     "search_tokens_per_reply": warm["usage"]["completion_tokens"], "phases": phases}


PROMPTS = ("Give three tips for staying healthy.", "Describe a sunset to someone who has never seen one.",
           "Explain why the sky is blue.", "Write a short poem about autumn.",
           "What are the pros and cons of remote work?", "Suggest a name for a bakery and say why.",
           "How do I make a good cup of tea?", "Summarise the plot of Romeo and Juliet in three sentences.")


async def ask(client, i: int, max_tokens: int | None = None) -> dict:
    """One chat completion through the openai client: status, seconds, tokens and finish reason (or the error)."""
    import openai

    started = time.monotonic()
    extra = {"max_tokens": max_tokens} if max_tokens else {}
    try:
        reply = await client.chat.completions.create(
            model="darwin", seed=i, messages=[{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}],
            **extra)
    except openai.APIStatusError as exc:
        return {"status": exc.status_code, "seconds": time.monotonic() - started, "error": str(exc)[:200]}
    except openai.APIError as exc:
        return {"status": None, "seconds": time.monotonic() - started, "error": str(exc)[:200]}
    return {"status": 200, "seconds": time.monotonic() - started, "tokens": reply.usage.completion_tokens,
            "finish_reason": reply.choices[0].finish_reason}


def concurrency(args: argparse.Namespace) -> tuple[dict, dict]:
    """1 request alone, then `--clients` at once, to the embedded model's server, through the openai client."""
    import asyncio

    import openai

    search = args.search if args.search is not None else [
        "--mutants", "5", "--keep-top", "3", "--replacement-period", "40", "--max-new-tokens", "128"]
    command = ["--policy", "embedded", "--reward", "default", "--mutator", "template", "--max-concurrent",
               str(args.clients), "--max-queue", str(args.clients), "--max-search-seconds", "3600", *search]

    async def measure(base: str, pid: int) -> dict:
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=3600)
        try:
            warm = await ask(client, 999, max_tokens=8)
            assert warm["status"] == 200, f"the warm-up request failed: {warm}"
            cpu0 = cpu_seconds(pid)
            alone = await ask(client, 0)
            cpu1, started = cpu_seconds(pid), time.monotonic()
            many = await asyncio.gather(*(ask(client, i) for i in range(args.clients)))
            wall, cpu2 = time.monotonic() - started, cpu_seconds(pid)
        finally:
            await client.close()
        return {"alone": alone | {"server_cpu_s": round(cpu1 - cpu0, 2)},
                "together": {"wall_s": wall, "server_cpu_s": round(cpu2 - cpu1, 2), "requests": many}}

    with serving(command, args.server_threads) as (base, _, pid):
        phases = asyncio.run(measure(base, pid))
    alone, together = phases["alone"], phases["together"]
    answered = [r for r in together["requests"] if r["status"] == 200]
    alone_tps = alone["tokens"] / alone["seconds"] if alone["status"] == 200 else None
    together_tps = sum(r["tokens"] for r in answered) / together["wall_s"]
    first = min(r["seconds"] for r in answered) if answered else None
    summary = {
        "every_request_answered": len(answered) == args.clients and alone["status"] == 200,
        "answered": len(answered), "requests": args.clients,
        "finish_reason_stop": sum(r.get("finish_reason") == "stop" for r in answered),
        "throughput_ratio_together_over_alone": together_tps / alone_tps if alone_tps else None,
        "first_answer_ratio_together_over_alone": first / alone["seconds"] if first and alone_tps else None,
        "alone": {"latency_s": round(alone["seconds"], 2), "tokens": alone.get("tokens"),
                  "tokens_per_second": round(alone_tps, 2) if alone_tps else None},
        "together": {"wall_s": round(together["wall_s"], 2), "tokens": sum(r["tokens"] for r in answered),
                     "tokens_per_second": round(together_tps, 2),
                     "latency_s": {"first": round(first, 2) if first else None,
                                   "median": round(statistics.median(r["seconds"] for r in answered), 2)
                                   if answered else None,
                                   "max": round(max(r["seconds"] for r in answered), 2) if answered else None}},
        "targets": {"throughput_ratio_together_over_alone": ">= 3", "first_answer_ratio_together_over_alone": "<= 2",
                    "every_request_answered": True},
    }
    return summary, {"command": " ".join(["darwin-chains", "serve", *command]), "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("leavers", "concurrency"), default="leavers")
    parser.add_argument("--clients", type=int, default=16, help="clients at once (the leavers among them)")
    parser.add_argument("--leavers", type=int, default=4)
    parser.add_argument("--leave-at", type=int, default=12,
                        help="leavers disconnect once this many periods were scored (of their 4 x 12)")
    parser.add_argument("--max-concurrent", type=int, default=4, help="the server's, in the leavers scenario")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--server-threads", type=int, default=1, help="the server's OMP_NUM_THREADS")
    parser.add_argument("--search", type=shlex.split, default=None,
                        help="the server's search flags as one string, e.g. '--max-new-tokens 8' (default: the "
                             "scenario's, see the module docstring)")
    parser.add_argument("--out", default=None, help="results file (default: runs/small-llama-cpu/results.json for "
                        "leavers, runs/embedded-cpu/results.json for concurrency)")
    args = parser.parse_args()

    summary, details = (leavers if args.scenario == "leavers" else concurrency)(args)
    result = {"benchmark": "serve_load", "scenario": args.scenario, **details, "summary": summary,
              "settings": vars(args) | {"server_env": {"OMP_NUM_THREADS": str(args.server_threads)}},
              "machine": machine_record()}
    default = "small-llama-cpu" if args.scenario == "leavers" else "embedded-cpu"
    out = Path(args.out or Path(__file__).parent / "runs" / default / "results.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
