"""Write questions.jsonl: one question per grounding passage; the expected fact is its answer's first marked fact
that the question does not already contain (the one the question asks for).

    python benchmarks/rag/build.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "grounding"))
from passages import PASSAGES  # noqa: E402
from rag import states  # noqa: E402

MARK = re.compile(r"\[\[([^|\]]+)\|")
#: Where the marked fact is only part of what the question asks for ("1" of "about 1 kilometre").
FACTS = {32: "1 kilometre"}


def main() -> None:
    with open(HERE / "questions.jsonl", "w") as f:
        for index, (domain, _, question, answer) in enumerate(PASSAGES):
            fact = FACTS.get(index) or next(f for f in MARK.findall(answer) if not states(question, f))
            f.write(json.dumps({"id": f"q{index:02d}", "passage": index, "domain": domain, "question": question,
                                "fact": fact}) + "\n")
    print(f"{len(PASSAGES)} questions")


if __name__ == "__main__":
    main()
