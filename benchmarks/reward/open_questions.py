"""Does the default reward prefer a correct answer to an open question over a fluent wrong one?

Sixteen general-knowledge "why/how" questions, each with a correct two- or three-sentence answer and a wrong one
of one of three kinds: a title-like line on the question's words ("The Sky Blue: The Science of the Cephalopod
Mystery", the case that started this), a confident wrong explanation in the same style and length, or an answer
to a neighbouring question. Each reward scores both with the question alone as the prompt (`Prompt.of(question)`);
a pair is won when the correct answer scores strictly higher.

The blends are `WeightedReward([(defaults.reward(), 1.0), (SECOND, w)])`, every w of a grid reported. The
grid's first four weights (0.5 to 4) were fixed before the first run; 8 and 16 were added after it showed that
cosine relevance spreads about a tenth as far as the default, so smaller weights barely move a ranking. One more
weight is not read from these pairs at all: it matches the two rewards' spread (standard deviation) on the
reward-check answers (`reward_check.py`: 40 AlpacaEval instructions, GPT-4 Turbo's answer and a SmolLM2 sample
each), and the same answers say what each blend costs there (how often it still prefers GPT-4 Turbo's answer).
A blend's score is the weighted sum of its parts' scores (checked once against `WeightedReward` itself), so each
part scores each answer once.

    python benchmarks/reward/open_questions.py            # -> runs/open-questions-<cpu capability>.json
    python benchmarks/reward/open_questions.py --no-judge # without the embedded SmolLM2 as a judge (faster)

Run from the repository root; about a minute on two CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
RUNS = Path(__file__).resolve().parent / "runs"

#: (kind, question, correct, wrong). The first pair is the one the issue reported.
PAIRS = [
    ("title", "Why is the sky blue?",
     "Sunlight is scattered by the molecules of the air, and short blue wavelengths scatter far more than long "
     "red ones (Rayleigh scattering). That scattered blue light reaches our eyes from every part of the sky.",
     "The Sky Blue: The Science of the Cephalopod Mystery"),
    ("wrong", "Why do we have seasons?",
     "Earth's axis is tilted about 23.5 degrees, so each hemisphere leans toward the Sun for part of the year and "
     "away from it for the rest. Leaning toward it gives longer days and more direct sunlight, which is summer.",
     "Earth's orbit is an ellipse, so for part of the year we are much closer to the Sun and for the rest much "
     "farther away. Being closer gives stronger sunlight and warmer days, which is summer."),
    ("wrong", "How do vaccines work?",
     "A vaccine shows the immune system a harmless piece or weakened form of a germ. The body makes antibodies and "
     "memory cells against it, so it can fight the real germ quickly if it ever meets it.",
     "A vaccine puts a small dose of medicine into the blood that kills viruses directly. The medicine stays in the "
     "bloodstream for years, destroying any germs of that kind before they can multiply."),
    ("wrong", "Why does the Moon have phases?",
     "The Moon is always half lit by the Sun, and as it orbits Earth we see different amounts of that lit half. "
     "When it lies between us and the Sun we see the dark side, a new moon; on the far side we see a full moon.",
     "Earth's shadow falls across the Moon and covers a different part of it each night. When the shadow covers it "
     "completely we see a new moon; when the shadow moves away we see a full moon."),
    ("neighbour", "How does a refrigerator keep food cold?",
     "A refrigerant evaporates in coils inside the fridge and absorbs heat from the food as it does. A compressor "
     "then squeezes the vapour so it releases that heat through coils at the back, and the cycle repeats.",
     "An oven heats food with electric elements or a gas flame that warm the air inside it. A thermostat switches "
     "the heat on and off to hold the temperature you set, and a fan may spread the hot air evenly."),
    ("title", "Why do leaves change colour in autumn?",
     "As days shorten, trees stop making chlorophyll, the green pigment, and it breaks down. The yellow and orange "
     "pigments that were there all along show through, and some trees make red pigments as well.",
     "Autumn Leaves: A Journey Through the Colours of Memory"),
    ("wrong", "What causes tides?",
     "The Moon's gravity pulls on the oceans, raising a bulge of water on the side facing it and another on the "
     "far side. As Earth turns through these bulges, coasts get two high tides and two low tides a day.",
     "Winds blowing across the open ocean push water toward the coasts during the day and pull it back at night. "
     "Strong daytime winds pile water up against the shore, which gives a high tide."),
    ("neighbour", "How do airplanes stay in the air?",
     "An airplane's wings are shaped and angled so that air flowing over them is pushed downward, which creates an "
     "upward force called lift. The engines provide thrust to keep air moving over the wings fast enough.",
     "A hot air balloon rises because the air inside it is heated by a burner. Hot air is less dense than the "
     "cooler air around it, so the balloon floats upward, and the pilot lets air cool to come down."),
    ("neighbour", "How does the heart pump blood?",
     "The heart has four chambers: the atria receive blood and the ventricles pump it out. The right side sends "
     "blood to the lungs for oxygen and the left side pumps it to the body, while valves keep it flowing one way.",
     "The lungs take in air through the windpipe into millions of tiny sacs called alveoli. Oxygen passes through "
     "their thin walls into the blood, and carbon dioxide passes out to be breathed away."),
    ("title", "Why do onions make you cry?",
     "Cutting an onion breaks its cells and releases enzymes that turn its sulfur compounds into an irritating "
     "gas. The gas reaches your eyes, and they make tears to wash it away.",
     "Tears of the Onion: A Kitchen Love Story"),
    ("neighbour", "How does photosynthesis work?",
     "Plants capture light energy with chlorophyll in their leaves. They use it to turn carbon dioxide from the air "
     "and water from the soil into glucose for food, releasing oxygen as a by-product.",
     "Cells break down glucose with oxygen to release the energy stored in it. This process, called cellular "
     "respiration, happens in the mitochondria and gives off carbon dioxide and water."),
    ("wrong", "Why does ice float on water?",
     "Water expands when it freezes because its molecules lock into an open crystal held together by hydrogen "
     "bonds. That makes ice less dense than liquid water, so it floats.",
     "Ice floats because it traps tiny air bubbles as it freezes, and the air holds it up. Ice made without any "
     "air in it is heavier than water and sinks to the bottom."),
    ("title", "Why did the Titanic sink?",
     "On its maiden voyage in 1912 the Titanic struck an iceberg that opened several of its forward compartments "
     "to the sea. More compartments flooded than the ship was built to survive, and it sank in under three hours.",
     "Titanic Dreams: The Ship That Sailed Into the Stars"),
    ("neighbour", "How do bees make honey?",
     "Worker bees collect nectar from flowers and add enzymes to it. Back in the hive they store it in wax cells and "
     "fan it with their wings until most of the water evaporates, then seal the cells with wax.",
     "Honeybees tell each other where flowers are with a waggle dance. The angle of the dance shows the direction "
     "of the food relative to the sun, and its length shows how far away it is."),
    ("wrong", "What causes thunder?",
     "Lightning heats the air around it to tens of thousands of degrees in a fraction of a second. The air expands "
     "so violently that it makes a shock wave, which we hear as thunder.",
     "Thunder is the sound of two large clouds bumping into each other high in the sky. The bigger and faster the "
     "clouds are, the louder the crash we hear on the ground."),
    ("title", "How does a rainbow form?",
     "Sunlight enters raindrops, bends, reflects off the back of each drop and bends again on the way out. Each "
     "colour bends by a different amount, so the white light spreads into a band of colours.",
     "Rainbow Road: Chasing Colours Across the Endless Sky"),
]

RELEVANCE_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
JUDGE_WEIGHTS = (0.1, 0.25, 0.5)
KINDS = ("title", "wrong", "neighbour")


def reward_check_pairs(data_dir: Path, tokens: int = 160) -> list[tuple[str, str, str]]:
    """reward_check.py's pairs: (instruction, GPT-4 Turbo's answer, a cached SmolLM2 sample), cut to one length."""
    from transformers import AutoTokenizer

    from benchmarks.reward.reward_check import samples
    from darwin_chains.embedded import smollm2_dir

    prompts = [json.loads(line) for line in (data_dir / "alpaca_eval_dev.jsonl").read_text().splitlines()][:40]
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())
    pairs = []
    for p, sample in zip(prompts, samples(prompts, tokens)):
        ref, smp = (tokenizer.encode(t, add_special_tokens=False) for t in (p["reference_output"], sample))
        n = min(tokens, len(ref), len(smp))
        pairs.append((p["instruction"], tokenizer.decode(ref[:n]), tokenizer.decode(smp[:n])))
    return pairs


def score_pairs(reward, pairs) -> dict[str, list[float]]:
    """Each pair's (better, worse) scores under one reward; the prompt is the instruction alone."""
    from darwin_chains import Prompt

    scored = [reward.score(Prompt.of(q), [good, bad]) for q, good, bad in pairs]
    return {"correct": [s[0] for s in scored], "wrong": [s[1] for s in scored]}


def judge_pairs(judge, pairs) -> tuple[dict[str, list], dict[str, list[str]]]:
    """The judge's scores, None where its reply held no score, and its replies (or why there was no score)."""
    from darwin_chains import Prompt
    from darwin_chains.errors import RewardError

    scores: dict[str, list] = {"correct": [], "wrong": []}
    replies: dict[str, list[str]] = {"correct": [], "wrong": []}
    for q, good, bad in pairs:
        for key, response in (("correct", good), ("wrong", bad)):
            try:
                result = judge.score(Prompt.of(q), [response])
                scores[key].append(result[0])
                replies[key].append(result.replies[0])
            except RewardError as exc:
                scores[key].append(None)
                replies[key].append(str(exc))
    return scores, replies


def blend(parts: dict[str, dict[str, list]], second: str, w: float) -> dict[str, list]:
    """default + w * second, pair by pair (None where the second reward gave no score)."""
    return {k: [None if s is None else d + w * s for d, s in zip(parts["default"][k], parts[second][k])]
            for k in ("correct", "wrong")}


def won(scores: dict[str, list], idx) -> tuple[int, int]:
    """(pairs the correct answer wins, pairs scored) among `idx`; a tie is a loss."""
    both = [(scores["correct"][i], scores["wrong"][i]) for i in idx]
    both = [(c, w) for c, w in both if c is not None and w is not None]
    return sum(c > w for c, w in both), len(both)


def main() -> None:
    from benchmarks.speed.speed import add_data_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-judge", action="store_true", help="skip the embedded SmolLM2 as an LLM judge")
    parser.add_argument("--out", type=Path, help="result file (default: runs/open-questions-<capability>.json)")
    add_data_dir(parser, "alpaca_eval_dev.jsonl")
    args = parser.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from darwin_chains import Prompt, defaults
    from darwin_chains.cli.record import machine_record
    from darwin_chains.rewards import RelevanceReward, WeightedReward

    started = time.perf_counter()
    default, relevance = defaults.reward(), RelevanceReward()
    open_pairs = [(q, c, w) for _, q, c, w in PAIRS]
    check_pairs = reward_check_pairs(args.data_dir)
    parts = {"default": score_pairs(default, open_pairs), "relevance": score_pairs(relevance, open_pairs)}
    check = {"default": score_pairs(default, check_pairs), "relevance": score_pairs(relevance, check_pairs)}

    # A blend is the weighted sum of its parts: check that against WeightedReward once.
    direct = WeightedReward([(default, 1.0), (relevance, 2.0)]).score(Prompt.of(PAIRS[0][1]), list(PAIRS[0][2:]))
    summed = [parts["default"][k][0] + 2.0 * parts["relevance"][k][0] for k in ("correct", "wrong")]
    assert all(abs(a - b) < 1e-4 for a, b in zip(direct, summed)), (direct, summed)

    # The weight that gives relevance the default's spread, read from the reward-check answers only.
    spread = {name: float(np.std(s["correct"] + s["wrong"])) for name, s in check.items()}
    matched = round(spread["default"] / spread["relevance"], 1)

    replies = {}
    if not args.no_judge:
        from darwin_chains.rewards.judge import JudgeReward

        parts["judge"], replies = judge_pairs(JudgeReward(defaults.policy("embedded")), open_pairs)

    n, rows = len(PAIRS), {}

    def row(name: str, spec: str, scores: dict[str, list], checked: dict[str, list] | None) -> None:
        wins, scored = won(scores, range(n))
        by_kind = {}
        for kind in KINDS:
            k_wins, k_scored = won(scores, [i for i, p in enumerate(PAIRS) if p[0] == kind])
            by_kind[kind] = f"{k_wins}/{k_scored}"
        check_share = None if checked is None else won(checked, range(len(check_pairs)))[0] / len(check_pairs)
        example = [scores["correct"][0], scores["wrong"][0]]
        rows[name] = {"reward": spec, "correct_wins": wins, "scored_pairs": scored, "share": round(wins / n, 4),
                      "by_kind": by_kind, "example": example,
                      "reward_check_reference_preferred": None if check_share is None else round(check_share, 4)}
        sky = "n/a" if None in example else f"{example[0]:5.2f} vs {example[1]:5.2f}"
        rc = "" if check_share is None else f" | reward check {check_share:4.0%}"
        print(f"{name:30s} correct wins {wins:2d}/{n} ({wins / n:4.0%}), {by_kind} | sky {sky}{rc}")

    row("default", "defaults.reward()", parts["default"], check["default"])
    row("relevance", "RelevanceReward()", parts["relevance"], check["relevance"])
    for w in (*RELEVANCE_WEIGHTS, matched):
        label = f"default + {w:g}*relevance" + (" (spread-matched)" if w == matched else "")
        row(label, f"WeightedReward([(defaults.reward(), 1.0), (RelevanceReward(), {w:g})])",
            blend(parts, "relevance", w), blend(check, "relevance", w))
    if "judge" in parts:
        row("judge (embedded SmolLM2)", "JudgeReward(defaults.policy('embedded'))", parts["judge"], None)
        for w in JUDGE_WEIGHTS:
            row(f"default + {w:g}*judge", f"WeightedReward([(defaults.reward(), 1.0), (JudgeReward(...), {w:g})])",
                blend(parts, "judge", w), None)

    seconds = time.perf_counter() - started
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"spread on the reward-check answers: {spread}; matched weight {matched:g}; {seconds:.0f}s")
    report = {
        "pairs": [{"kind": k, "question": q, "correct": c, "wrong": w} for k, q, c, w in PAIRS],
        "rows": rows, "scores": parts, "judge_replies": replies,
        "relevance_weights": list(RELEVANCE_WEIGHTS), "judge_weights": list(JUDGE_WEIGHTS),
        "reward_check": {"pairs": len(check_pairs), "spread": spread, "matched_relevance_weight": matched},
        "seconds": round(seconds, 1), "cpu_capability": capability, "torch": torch.__version__,
        "machine": machine_record(),
    }
    out = args.out or RUNS / f"open-questions-{capability.lower()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
