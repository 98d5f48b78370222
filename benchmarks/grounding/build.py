"""Build the grounding set: (context, question, grounded answer, answer with one fact changed), one case per fact.

Each passage in `passages.py` becomes a retrieved context (the passage and two other passages, in a seeded order,
as a retriever with k=3 returns them). Each marked fact of its answer is changed once, the way hallucination
benchmarks perturb grounded answers: numbers move to a nearby value, years shift, months and weekdays swap, clock
times change hour, names come from a pool of other names, entities from the alternatives written beside them. A
changed fact never appears anywhere in its context. Passages, not cases, are split into dev and test halves, so no
passage informs the weight and the test figure both.

A harder set, swaps.jsonl, changes a number, time or month into another one from the same passage instead;
crossed.jsonl into one from another passage of the same context (another product's price).

    python benchmarks/grounding/build.py        # writes cases.jsonl, swaps.jsonl and crossed.jsonl, deterministic
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from passages import PASSAGES

HERE = Path(__file__).resolve().parent
SEED = 7
MARK = re.compile(r"\[\[([^|\]]+)\|(\w+)(?:\|([^\]]+))?\]\]")
MONTHS = ("January February March April May June July August September October November December").split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
NAMES = ["Sarah Mitchell", "David Chen", "Laura Bianchi", "Omar Haddad", "Priya Nair", "Lucas Meyer",
         "Emma Johansson", "Carlos Mendes", "Yuki Tanaka", "Peter Novak", "Fatima Zahra", "Henry Walsh"]


def plain(answer: str) -> str:
    """The answer with its marks removed."""
    return MARK.sub(lambda m: m.group(1), answer)


def change_number(text: str, rng: random.Random) -> str:
    word = text.lower()
    if word in WORDS:
        return rng.choice([w for w, n in WORDS.items() if n != WORDS[word]])
    digits = text.replace(",", "")
    if "." in digits:
        value = float(digits)
        new = round(value + rng.choice([-1, 1]) * max(0.1, round(value * rng.uniform(0.2, 0.5), 1)), 1)
        return f"{abs(new) or value + 1:g}"
    value = int(digits)
    if value < 10:
        return str(rng.choice([n for n in range(1, 13) if n != value]))
    step = max(1, round(value * rng.uniform(0.15, 0.45)))
    new = value + step if value - step < 1 or rng.random() < 0.5 else value - step
    return f"{new:,}" if "," in text else str(new)


def change_date(text: str, rng: random.Random) -> str:
    for month in MONTHS:
        if month in text:
            return text.replace(month, rng.choice([m for m in MONTHS if m != month]))
    for day in DAYS:
        if day in text:
            return text.replace(day, rng.choice([d for d in DAYS if d != day]))
    year = re.search(r"\b(1[5-9]\d\d|20\d\d)\b", text)
    if year:
        return text.replace(year.group(), str(int(year.group()) + rng.choice([-1, 1]) * rng.randint(2, 30)))
    raise ValueError(f"no month, weekday or year in date {text!r}")


def change_time(text: str, rng: random.Random) -> str:
    hour = re.match(r"(\d+)", text).group(1)
    return str(rng.choice([h for h in range(1, 13) if str(h) != hour])) + text[len(hour):]


def appears(text: str, context: str) -> bool:
    """Whether `text` occurs in the context as whole words or a whole number ("3" is not in "2.3" or "30")."""
    return re.search(rf"(?<![\w.,]){re.escape(text)}(?![\w]|[.,:]\d)", context, re.I) is not None


def change(text: str, kind: str, alternatives: str | None, rng: random.Random) -> str:
    if alternatives:
        return rng.choice(alternatives.split(";"))
    if kind == "number":
        return change_number(text, rng)
    if kind == "date":
        return change_date(text, rng)
    if kind == "time":
        return change_time(text, rng)
    if kind == "name":
        pool = NAMES if " " in text else [n.split()[-1] for n in NAMES]
        return rng.choice([n for n in pool if n != text])
    raise ValueError(f"kind {kind!r} needs alternatives")


SAME_KIND = {"time": r"\b\d{1,2}(?::\d\d)? ?(?:AM|PM)\b", "number": r"(?<![\d:])\d[\d,]*(?:\.\d+)?(?![\d:]| ?(?:AM|PM))",
             "date": r"\b(?:" + "|".join(MONTHS) + r")\b"}


def swaps(cases: list[dict]) -> list[dict]:
    """The harder set: a fact replaced by another value of its kind from the same passage (9 AM for 7:15 AM when
    the passage has both), so every word of the changed answer is somewhere in the context."""
    return _replaced(cases, lambda case, passage: passage, "swap", "")


def crossed(cases: list[dict]) -> list[dict]:
    """Swaps across passages: a fact replaced by a value of its kind from another passage of the same context
    (another product's price, another event's time), built as `swaps` is."""
    return _replaced(cases, lambda case, passage: case["context"].replace(passage, ""), "crossed", "-crossed")


def _replaced(cases: list[dict], source, tag: str, salt: str) -> list[dict]:
    """Each fact replaced by a value of its kind drawn from `source(case, passage)` and found nowhere in the answer
    (nor in the passage, when drawn from elsewhere)."""
    out = []
    for case in cases:
        pattern = SAME_KIND.get(case["kind"])
        if pattern is None:
            continue
        passage = PASSAGES[case["passage"]][1]
        text = source(case, passage)
        others = sorted({v.strip(".,") for v in re.findall(pattern, text)} - {case["fact"]})
        others = [v for v in others if not appears(v, case["grounded"]) and v.replace(",", "") != case["fact"]
                  and (text == passage or not appears(v, passage))]
        if case["kind"] == "date":  # swap the month inside the date: "7 September" -> "7 August"
            month = next((m for m in MONTHS if m in case["fact"]), None)
            others = [case["fact"].replace(month, m) for m in others if m != month] if month else []
        if others:
            new = random.Random(f"{SEED}-{case['id']}{salt}").choice(others)
            perturbed = re.sub(rf"(?<![\w.,]){re.escape(case['fact'])}(?![\w]|[.,:]\d)", new, case["grounded"],
                               count=1)
            if perturbed != case["grounded"]:
                out.append({**case, "id": f"{case['id']}-{tag}", "perturbed": perturbed, "changed_to": new})
    return out


def build() -> list[dict]:
    rng = random.Random(SEED)
    order = list(range(len(PASSAGES)))
    rng.shuffle(order)
    dev = set(order[: len(order) // 2])
    cases = []
    for index, (domain, passage, question, answer) in enumerate(PASSAGES):
        others = rng.sample([p[1] for i, p in enumerate(PASSAGES) if i != index], 2)
        chunks = [passage, *others]
        rng.shuffle(chunks)
        context = "\n\n".join(chunks)
        marks = list(MARK.finditer(answer))
        for n, mark in enumerate(marks):
            text, kind, alternatives = mark.groups()
            for _ in range(20):  # a changed fact must be nowhere in the context
                new = change(text, kind, alternatives, rng)
                if new != text and not appears(new, context):
                    break
            else:
                raise ValueError(f"passage {index}: no change of {text!r} avoids the context")
            perturbed = plain(answer[: mark.start()] + new + answer[mark.end():])
            cases.append({"id": f"p{index:02d}-f{n}", "passage": index, "domain": domain,
                          "split": "dev" if index in dev else "test", "kind": kind, "context": context,
                          "question": question, "grounded": plain(answer), "perturbed": perturbed,
                          "fact": text, "changed_to": new})
    return cases


def main() -> None:
    cases = build()
    with open(HERE / "cases.jsonl", "w") as f:
        for case in cases:
            f.write(json.dumps(case) + "\n")
    with open(HERE / "swaps.jsonl", "w") as f:
        for case in swaps(cases):
            f.write(json.dumps(case) + "\n")
    with open(HERE / "crossed.jsonl", "w") as f:
        for case in crossed(cases):
            f.write(json.dumps(case) + "\n")
    kinds = {k: sum(c["kind"] == k for c in cases) for k in sorted({c["kind"] for c in cases})}
    print(f"{len(swaps(cases))} swaps, {len(crossed(cases))} crossed; {len(cases)} cases ({sum(c['split'] == 'dev' for c in cases)} dev) from {len(PASSAGES)} passages: {kinds}")


if __name__ == "__main__":
    main()
