"""How soon does a streamed Darwin answer start, with `stream_commit` on (the default) and off (the old behaviour)?

    python benchmarks/streaming/first_chunk.py            # -> runs/<cpu capability>.json (about 7 min on 2 cores)
    python benchmarks/streaming/first_chunk.py --max-new-tokens 160 --out /tmp/first_chunk.json

The embedded SmolLM2 policy, the default reward and mutator, the default search (5 mutants, top-3, m = 40, seed
sample, 256 new tokens unless --max-new-tokens), seed 0, two prompts, through four faces:

- `DarwinAlign().stream(prompt)` (LangChain runnable);
- `ChatDarwin().stream(prompt)` (LangChain chat model);
- `DarwinLLM().stream_chat([ChatMessage(role="user", content=prompt)])` (LlamaIndex);
- `darwin-chains serve` on loopback (a subprocess, OMP_NUM_THREADS=1), through the `openai` client with
  `stream=True`; `stream_commit=False` goes in the body's `darwin` object.

Each (prompt, face) runs with `stream_commit` True and then False, side by side. Per stream: seconds from the call
to the first non-empty text chunk, seconds to the end of the stream, their ratio, the number of non-empty chunks,
and whether the chunks join to the answer. LlamaIndex is the one face that hands back the core's `SearchResult`
(on its last response), so its `answer` is the reference: every face runs the same seeded search, so every face's
joined chunks should equal it. Every model is loaded, and every face called once, before anything is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"
PROMPTS = ("Give three tips for writing a clear email.", "Why is the sky blue?")
FACES = ("DarwinAlign", "ChatDarwin", "DarwinLLM", "serve")
SEED = 0

from tests.integration.servers import free_port, stop, wait_ready  # noqa: E402

#: A face streams a prompt: it yields (text piece, what its last chunk says of the search, else None).
Face = Callable[[str, bool, dict], Iterator[tuple[str, "dict | None"]]]


def searched(reward: float | None, trace: dict, answer: str | None = None) -> dict:
    """The search behind a stream, as its last chunk reports it: to tell a slower search from a slower machine."""
    return {"reward": reward, "search_s": trace["seconds"], "tokens_generated": trace["tokens_generated"],
            "periods": trace["periods"], **({"answer": answer} if answer is not None else {})}


def start_server(log: Path) -> tuple[subprocess.Popen, str]:
    """`darwin-chains serve` of the embedded policy on a free loopback port, one torch thread, models preloaded."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("DARWIN_CHAINS_POLICY", None)
    server = subprocess.Popen([sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(port),
                               "--policy", "embedded", "--no-access-log"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/health", 600, server)
    except BaseException:
        stop(server)
        raise
    return server, base


def faces(base: str) -> dict[str, Face]:
    """The four faces, each built once per setting (building loads nothing; the first call does)."""
    from langchain_darwin import ChatDarwin, DarwinAlign
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.darwin import DarwinLLM
    from openai import OpenAI

    align = {c: DarwinAlign(seed=SEED, stream_commit=c) for c in (True, False)}
    chat = {c: ChatDarwin(seed=SEED, stream_commit=c) for c in (True, False)}
    llm = {c: DarwinLLM(seed=SEED, stream_commit=c) for c in (True, False)}
    client = OpenAI(base_url=f"{base}/v1", api_key="unused", timeout=600, max_retries=0)

    def langchain(runnables: dict) -> Face:
        def face(prompt: str, commit: bool, kwargs: dict):
            for chunk in runnables[commit].stream(prompt, **kwargs):
                meta = chunk.response_metadata
                yield chunk.content, searched(meta["reward"], meta["darwin"]) if "darwin" in meta else None
        return face

    def llama_index(prompt: str, commit: bool, kwargs: dict):
        for response in llm[commit].stream_chat([ChatMessage(role="user", content=prompt)], **kwargs):
            result = response.raw
            yield response.delta or "", (None if result is None else
                                         searched(result.reward, result.trace.summary(), result.answer))

    def serve(prompt: str, commit: bool, kwargs: dict):
        extra = {} if commit else {"darwin": {"stream_commit": False}}  # knobs go in `darwin`; only True is default
        limit = {"max_tokens": kwargs["max_new_tokens"]} if "max_new_tokens" in kwargs else {}
        stream = client.chat.completions.create(model="darwin", messages=[{"role": "user", "content": prompt}],
                                                stream=True, seed=SEED, extra_body=extra or None, **limit)
        for chunk in stream:
            darwin = (chunk.model_extra or {}).get("darwin")
            if chunk.choices:
                yield chunk.choices[0].delta.content or "", darwin and searched(darwin["reward"], darwin["trace"])

    return {"DarwinAlign": langchain(align), "ChatDarwin": langchain(chat), "DarwinLLM": llama_index,
            "serve": serve}


def measure(face: Face, prompt: str, commit: bool, kwargs: dict) -> dict[str, Any]:
    """One stream, timed from the call: first non-empty chunk, end, chunk count, the joined text."""
    start = time.perf_counter()
    first, pieces, search = None, [], {}
    for piece, final in face(prompt, commit, kwargs):
        if piece:
            first = time.perf_counter() - start if first is None else first
            pieces.append(piece)
        search.update(final or {})
    total = time.perf_counter() - start
    return {"first_chunk_s": round(first, 3) if first is not None else None, "total_s": round(total, 3),
            "ratio": round(first / total, 3) if first is not None else None, "chunks": len(pieces),
            "answer": search.pop("answer", None), "search": search, "text": "".join(pieces)}


def mean(values: list) -> float | None:
    """The mean, or None when any stream sent no text at all."""
    return None if None in values else round(statistics.mean(values), 3)


def summarise(rows: list[dict]) -> list[dict]:
    """Face x stream_commit: the mean over prompts, and each prompt's figures."""
    out = []
    for face in FACES:
        for commit in (True, False):
            mine = [r for r in rows if r["face"] == face and r["stream_commit"] == commit]
            out.append({"face": face, "stream_commit": commit,
                        **{k: mean([r[k] for r in mine]) for k in ("first_chunk_s", "total_s", "ratio", "chunks")},
                        **{k: mean([r["search"].get(k) for r in mine]) for k in ("search_s", "tokens_generated")},
                        "per_prompt": {k: [r[k] for r in mine] for k in ("first_chunk_s", "total_s", "ratio", "chunks")}
                        | {k: [r["search"].get(k) for r in mine] for k in ("search_s", "tokens_generated", "reward")},
                        "joins_answer": all(r["joins_answer"] for r in mine)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="per-call max_new_tokens for every stream (default: the search's own, 256)")
    parser.add_argument("--out", type=Path, default=None, help="result file (default: runs/<cpu capability>.json)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from darwin_chains import SearchConfig
    from darwin_chains.cli.record import machine_record

    kwargs = {} if args.max_new_tokens is None else {"max_new_tokens": args.max_new_tokens}
    config = SearchConfig().replace(**kwargs)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        server, base = start_server(log)
        try:
            streams = faces(base)
            for name, face in streams.items():  # warm-up: loads the models, so no face pays for it
                for commit in (True, False):
                    measure(face, "Say hello.", commit, {"max_new_tokens": 8})
            print(f"warm after {time.perf_counter() - started:.0f} s", file=sys.stderr)
            rows = []
            for prompt in PROMPTS:
                for name, face in streams.items():
                    for commit in (True, False):
                        row = {"prompt": prompt, "face": name, "stream_commit": commit,
                               **measure(face, prompt, commit, kwargs)}
                        rows.append(row)
                        print(f"{name:11} commit={commit!s:5} first {row['first_chunk_s']} s, total "
                              f"{row['total_s']} s, {row['chunks']} chunks, search {row['search']}  "
                              f"[{prompt[:30]}]", file=sys.stderr)
        except BaseException:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            stop(server)

    for row in rows:  # the reference: the core's answer of the same seeded search, from LlamaIndex's last response
        reference = next(r["answer"] for r in rows if r["face"] == "DarwinLLM" and r["prompt"] == row["prompt"]
                         and r["stream_commit"] == row["stream_commit"])
        row["joins_answer"] = row["text"] == reference
    for row in rows:
        row.pop("answer")
    answers = {p: {str(c).lower(): next(r["text"] for r in rows if r["prompt"] == p and r["stream_commit"] == c
                                        and r["face"] == "DarwinLLM") for c in (True, False)} for p in PROMPTS}
    report = {
        "what": "seconds from the call to the first non-empty text chunk and to the end of a streamed search, with "
                "stream_commit true (the default) and false (the old behaviour), through four faces",
        "settings": {"policy": "embedded", "reward": "default", "mutator": "default", "seed": SEED,
                     "mutants": config.mutants, "keep_top": config.keep_top, "replacement_period":
                         config.replacement_period, "seed_sample": config.seed_sample,
                     "max_new_tokens": config.max_new_tokens, "max_new_tokens_default": SearchConfig().max_new_tokens,
                     "client_torch_threads": torch.get_num_threads(), "server_omp_threads": 1,
                     "reference": "the core SearchResult.answer on DarwinLLM's last response"},
        "summary": summarise(rows),
        "committed_answer_differs": {p: a["true"] != a["false"] for p, a in answers.items()},
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_record(),
    }
    out = args.out or RUNS / f"{torch.backends.cpu.get_cpu_capability().lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for s in report["summary"]:
        print(f"{s['face']:11} commit={s['stream_commit']!s:5} first {s['first_chunk_s']:6.2f} s  total "
              f"{s['total_s']:6.2f} s  ratio {s['ratio']:.2f}  chunks {s['chunks']:4.1f}  "
              f"search {s['search_s']:6.2f} s {s['tokens_generated']:6.0f} tokens  joins {s['joins_answer']}")
    print(f"-> {out} ({report['wall_s']} s)")


if __name__ == "__main__":
    main()
