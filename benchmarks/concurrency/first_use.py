"""Concurrent first use: fresh processes whose very first act is several searches at once, through each face.

Models load at their first use. When a fresh process starts with several searches at once, they all ask for the
policy, the reward's encoder and MiniLM together, in several threads: each load must happen once, and no load may
disturb another or a search already running (`darwin_chains/loading.py`). Each process here starts cold (the
converted SmolLM2 is on disk, nothing is loaded) and runs `--searches` small searches at once:

- `arun`: `asyncio.gather` of `Search.arun`, each task fetching the policy itself (`defaults.policy` in a thread),
  half of them with the default reward in fp32 and half in bf16 (the mix that raced), half of the prompts with
  retrieved context (the groundedness term loads MiniLM). The fp32 searches then run again alone: their answers
  must not change.
- `batch`: `DarwinAlign.batch` with `max_concurrency` = searches; the encoder dtype from --dtype.
- `serve`: `darwin-chains serve` started fresh, then that many concurrent chat requests; --dtype as above.

A process succeeds when every search returns an answer, torch's default dtype is still float32 at the end, and (for
`arun`) every fp32 answer equals its rerun alone. Run from the repository root, alone on the machine:

    python benchmarks/concurrency/first_use.py --processes 20      # -> runs/first-use/<cpu capability>.json
    python benchmarks/concurrency/first_use.py --faces batch --dtypes bf16 --processes 2 --out /tmp/first.json
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
RUNS = Path(__file__).resolve().parent / "runs" / "first-use"
FACES = ("arun", "batch", "serve")
CONTEXT = "Zelbrook Public Library opens at 7:30 AM on weekdays and at 9 AM on weekends."
QUESTIONS = ["When does the library open on weekdays?", "Name two rivers in Europe.", "When does it open on Sundays?",
             "What does a compiler do?", "Is the library open at 8 AM on a Monday?", "Give a tip for a clear email."]
SETTINGS = {"max_new_tokens": 8, "replacement_period": 4, "mutants": 2, "keep_top": 1}


def messages(i: int) -> list[dict]:
    """Even searches carry retrieved context in a system message, odd ones are plain questions."""
    question = {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}
    return [{"role": "system", "content": f"Context: {CONTEXT}"}, question] if i % 2 == 0 else [question]


# -- inside a fresh process --------------------------------------------------------------------------------------

def child_arun(searches: int) -> dict:
    from darwin_chains import Prompt, Search, SearchConfig, TemplateMutator, defaults
    from darwin_chains.rewards import PreferenceReward

    dtypes = ["fp32" if i % 2 == 0 else "bf16" for i in range(searches)]

    def search(i: int, policy) -> Search:
        return Search(policy, PreferenceReward(dtype=dtypes[i]), TemplateMutator(), SearchConfig(seed=i, **SETTINGS))

    async def one(i: int):
        policy = await asyncio.to_thread(defaults.policy)  # every task asks for the policy itself
        return await search(i, policy).arun(Prompt.of(messages(i)))

    async def together():
        return await asyncio.gather(*(one(i) for i in range(searches)), return_exceptions=True)

    results = asyncio.run(together())
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    alone = {i: search(i, defaults.policy()).run(Prompt.of(messages(i))).answer
             for i, d in enumerate(dtypes) if d == "fp32" and not isinstance(results[i], BaseException)}
    changed = [i for i, answer in alone.items() if answer != results[i].answer]
    return {"searches": searches, "answered": sum(not isinstance(r, BaseException) and bool(r.answer.strip())
                                                  for r in results),
            "errors": errors, "fp32_answers_changed_alone": changed}


def child_batch(searches: int) -> dict:
    from langchain_darwin import DarwinAlign

    align = DarwinAlign(seed=0, **SETTINGS)
    results = align.batch([messages(i) for i in range(searches)], config={"max_concurrency": searches},
                          return_exceptions=True)
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"searches": searches, "answered": sum(not isinstance(r, BaseException) and bool(r.content.strip())
                                                  for r in results), "errors": errors}


def child(face: str, searches: int) -> None:
    import torch

    start = time.perf_counter()
    report = {"arun": child_arun, "batch": child_batch}[face](searches)
    report.update(seconds=round(time.perf_counter() - start, 2),
                  default_dtype=str(torch.get_default_dtype()).removeprefix("torch."))
    print(json.dumps(report))


# -- the parent: one fresh process per run -----------------------------------------------------------------------

def environment(dtype: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "DARWIN_CHAINS_FEATURE_DTYPE": dtype, "PYTHONPATH": str(ROOT)}
    env.pop("DARWIN_CHAINS_POLICY", None)
    return env


def run_in_process(face: str, dtype: str, searches: int, timeout: float) -> dict:
    if face == "serve":
        return run_serve(dtype, searches, timeout)
    done = subprocess.run([sys.executable, __file__, "--child", face, "--searches", str(searches)], cwd=ROOT,
                          env=environment(dtype), capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"searches": searches, "answered": 0, "errors": [f"exit {done.returncode}: {done.stderr[-1500:]}"]}
    return json.loads(lines[-1])


def run_serve(dtype: str, searches: int, timeout: float) -> dict:
    """A fresh `darwin-chains serve` on a free loopback port, then `searches` chat requests at once."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(port)], cwd=ROOT,
                              env=environment(dtype), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if server.poll() is not None or time.perf_counter() - start > timeout:
                return {"searches": searches, "answered": 0,
                        "errors": [f"the server did not start: {server.communicate(timeout=5)[1][-1500:]}"]}
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)

        def ask(i: int) -> tuple[int, str]:
            body = {"model": "darwin", "messages": messages(i), "max_tokens": SETTINGS["max_new_tokens"], "seed": i,
                    "darwin": {k: v for k, v in SETTINGS.items() if k != "max_new_tokens"}}
            reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=timeout)
            text = reply.json()["choices"][0]["message"]["content"] if reply.status_code == 200 else reply.text
            return reply.status_code, text

        with concurrent.futures.ThreadPoolExecutor(searches) as pool:
            replies = list(pool.map(ask, range(searches)))
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    errors = [f"{status}: {text[:300]}" for status, text in replies if status != 200]
    return {"searches": searches, "answered": sum(status == 200 and bool(text.strip()) for status, text in replies),
            "errors": errors, "seconds": round(time.perf_counter() - start, 2)}


def succeeded(run: dict) -> bool:
    return (run["answered"] == run["searches"] and not run["errors"] and run.get("default_dtype", "float32") == "float32"
            and not run.get("fp32_answers_changed_alone"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=20, help="fresh processes per face and dtype")
    parser.add_argument("--searches", type=int, default=6, help="searches each process starts at once")
    parser.add_argument("--faces", nargs="+", choices=FACES, default=list(FACES))
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                        help="the encoder dtype of `batch` and `serve` ($DARWIN_CHAINS_FEATURE_DTYPE); `arun` mixes both")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one process may take")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/first-use/<cpu capability>.json")
    parser.add_argument("--child", choices=FACES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.searches)

    sys.path.insert(0, str(ROOT))
    from darwin_chains.cli.record import machine_record

    report: dict = {"what": f"fresh processes starting with {args.searches} concurrent small searches "
                            f"({SETTINGS}); success: every search answered, default dtype still float32, fp32 "
                            "answers (arun) unchanged when rerun alone",
                    "runs": {}}
    cases = [(face, dtype) for face in args.faces for dtype in (["fp32+bf16"] if face == "arun" else args.dtypes)]
    for face, dtype in cases:
        runs = []
        for n in range(args.processes):
            run = run_in_process(face, "fp32" if dtype == "fp32+bf16" else dtype, args.searches, args.timeout)
            runs.append(run)
            print(f"{face} {dtype} {n + 1}/{args.processes}: {'ok' if succeeded(run) else 'FAILED'} "
                  f"{run.get('seconds', '')} s {run['errors'][:1]}", flush=True)
        report["runs"][f"{face} {dtype}"] = {"processes": len(runs), "succeeded": sum(map(succeeded, runs)),
                                             "searches_answered": sum(r["answered"] for r in runs),
                                             "searches": sum(r["searches"] for r in runs),
                                             "errors": [e for r in runs for e in r["errors"]][:20]}
    report["machine"] = machine_record()
    out = args.out or RUNS / f"{report['machine']['cpu_capability'].lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["runs"], indent=1))
    if not all(r["succeeded"] == r["processes"] for r in report["runs"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
