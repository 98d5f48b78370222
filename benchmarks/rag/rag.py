"""Does the context-aware default reward make a real RAG chain state the retrieved fact more often?

The chain has a user's own shape: `retriever | format_docs | ChatPromptTemplate | DarwinAlign | StrOutputParser`,
over the packaged MiniLM embeddings (`MiniLMEmbeddings`) in LangChain's `InMemoryVectorStore`, with the embedded
SmolLM2 writing. The documents are the grounding benchmark's passages (benchmarks/grounding/passages.py); each
question of questions.jsonl asks for one fact of one passage. Every question runs twice with the same seed and
settings: with the default reward (preference head + groundedness term, which reads the retrieved context in the
system message) and with the context-blind head (`PreferenceReward(grounding=False)`). An answer counts when it
contains the expected fact after normalisation (case, commas in numbers, number words, "a.m."/"am", spacing).

    python benchmarks/rag/rag.py --threads 1 --name avx2-1thread
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
from passages import PASSAGES  # noqa: E402  the documents, shared with the grounding benchmark

SETTINGS = dict(mutants=3, keep_top=1, replacement_period=16, max_new_tokens=64, seed=0)
WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}


def normalise(text: str) -> str:
    """Lower case, digits for number words, no thousands commas, "7:15am" for "7:15 a.m.", single spaces."""
    text = text.lower().replace("a.m.", "am").replace("p.m.", "pm")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    text = re.sub(r"(?<=\d)\s+(am|pm)\b", r"\1", text)
    text = re.sub(r"[a-z]+", lambda m: WORDS.get(m.group(), m.group()), text)
    return " ".join(re.sub(r"[^\w:.\s]", " ", text).split())


def states(answer: str, fact: str) -> bool:
    """Whether the answer contains the fact as whole words."""
    return re.search(rf"(?<![\w.]){re.escape(normalise(fact))}(?![\w]|\.\d)", normalise(answer)) is not None


def load() -> list[dict]:
    return [json.loads(line) for line in (HERE / "questions.jsonl").read_text().splitlines()]


def count(results: dict) -> dict:
    """The rates and counts of a results dict, from its rows."""
    names = ("with_context", "blind")
    rows = results["rows"]
    results["rate"] = {k: round(sum(r[k]["states_fact"] for r in rows) / len(rows), 4) for k in names}
    results["counts"] = {k: sum(r[k]["states_fact"] for r in rows) for k in names}
    results["both_or_neither"] = sum(r["with_context"]["states_fact"] == r["blind"]["states_fact"] for r in rows)
    return results


def recheck(path: Path) -> None:
    """Check stored answers again after a change to an expected fact; the answers themselves stay as measured."""
    facts = {q["id"]: q["fact"] for q in load()}
    results = json.loads(path.read_text())
    for row in results["rows"]:
        row["fact"] = facts[row["id"]]
        for name in ("with_context", "blind"):
            row[name]["states_fact"] = states(row[name]["answer"], row["fact"])
    path.write_text(json.dumps(count(results), indent=1) + "\n")
    print(json.dumps({k: results[k] for k in ("questions", "rate", "counts", "both_or_neither")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="first N questions only")
    parser.add_argument("--ids", nargs="*", default=None, help="only these question ids (q00 ...)")
    parser.add_argument("--name", default=None, help="write runs/NAME/results.json")
    parser.add_argument("--recheck", action="store_true",
                        help="recount runs/NAME/results.json's stored answers against questions.jsonl's facts")
    args = parser.parse_args()
    if args.recheck:
        return recheck(HERE / "runs" / args.name / "results.json")

    import torch

    torch.set_num_threads(args.threads)
    from darwin_chains import defaults
    from darwin_chains.rewards import PreferenceReward
    from darwin_chains.cli.record import machine_record
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from langchain_darwin import DarwinAlign, MiniLMEmbeddings

    store = InMemoryVectorStore.from_texts([p[1] for p in PASSAGES], MiniLMEmbeddings())
    retriever = store.as_retriever(search_kwargs={"k": 2})
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer the question using only this context.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ])

    def format_docs(docs) -> str:
        return "\n\n".join(d.page_content for d in docs)

    policy = defaults.policy("embedded")
    rewards = {"with_context": defaults.reward(), "blind": PreferenceReward(grounding=False)}
    chains = {name: {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt
              | DarwinAlign(policy=policy, reward=reward, **SETTINGS) | StrOutputParser()
              for name, reward in rewards.items()}

    def report(rows: list[dict], seconds: float) -> dict:
        n = len(rows)
        return count({
            "questions": n,
            "retrieval_hit_rate": round(sum(r["retrieved"] for r in rows) / n, 4),
            "settings": {**SETTINGS, "retriever_k": 2, "policy": "embedded SmolLM2-135M-Instruct",
                         "blind": "PreferenceReward(grounding=False)", "with_context": "defaults.reward()"},
            "seconds": round(seconds, 1),
            "machine": machine_record(),
            "rows": rows,
        })

    out = HERE / "runs" / args.name / "results.json" if args.name else None
    questions = [q for q in load() if args.ids is None or q["id"] in args.ids][: args.limit]
    rows, started = [], time.perf_counter()
    for q in questions:
        retrieved = [d.page_content for d in retriever.invoke(q["question"])]
        row = {"id": q["id"], "question": q["question"], "fact": q["fact"],
               "retrieved": PASSAGES[q["passage"]][1] in retrieved}
        for name, chain in chains.items():
            t = time.perf_counter()
            answer = chain.invoke(q["question"])
            row[name] = {"answer": answer, "states_fact": states(answer, q["fact"]),
                         "seconds": round(time.perf_counter() - t, 1)}
        rows.append(row)
        print(json.dumps({k: row[k]["states_fact"] for k in rewards}), q["fact"], "|",
              row["with_context"]["answer"][:80].replace("\n", " "), "|", row["blind"]["answer"][:80].replace("\n", " "),
              flush=True)
        if out:  # after every question, so a long run can be read while it goes
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report(rows, time.perf_counter() - started), indent=1) + "\n")
    results = report(rows, time.perf_counter() - started)
    print(json.dumps({k: results[k] for k in ("questions", "rate", "counts", "retrieval_hit_rate", "seconds")}))
    if out:
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
