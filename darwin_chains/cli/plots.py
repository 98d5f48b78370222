"""Plots of benchmark results and of one search, drawn from the trace data (matplotlib, an optional dependency)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ..errors import require

FAMILIES = {  # methods drawn as one line, in order of compute
    "Best-of-N": ["best-of-5", "best-of-10", "best-of-15"],
    "Darwin": ["darwin-1", "darwin-2", "darwin-3"],
}
SINGLE = ["sample", "mutation-best-of-5", "sample-replace-5"]


def _pyplot():
    matplotlib = require("matplotlib", extra="bench")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reward_vs_tokens(summary: dict[str, dict], path: Path, title: str = "") -> Path:
    """Mean optimised reward against mean tokens generated, one line per method family."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, methods in FAMILIES.items():
        pts = [(summary[m]["tokens_generated"], summary[m]["reward"], summary[m]["reward_sem"], m)
               for m in methods if m in summary]
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                        label=label)
            for x, y, _, m in pts:
                n = m.split("-")[-1]
                ax.annotate(n + (f" cycle{'s' * (n != '1')}" if label == "Darwin" else ""), (x, y),
                            textcoords="offset points", xytext=(5, -12), fontsize=8)
    for m in SINGLE:
        if m in summary:
            s = summary[m]
            ax.errorbar([s["tokens_generated"]], [s["reward"]], yerr=[s["reward_sem"]], marker="s", capsize=3,
                        linestyle="none", label=m)
    ax.set_xlabel("tokens generated per prompt (mean)")
    ax.set_ylabel("optimised reward of the answer (mean ± s.e.)")
    ax.set_title(title or "Reward against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def judge_vs_reward(summary: dict[str, dict], judge: str, path: Path) -> Path:
    """Held-out judge against optimised reward per method: gains seen by both are real, by one only are not."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    key = f"judge:{judge}"
    for method, s in summary.items():
        if key not in s:
            continue
        ax.errorbar([s["reward"]], [s[key]], xerr=[s["reward_sem"]], yerr=[s[f"{key}:sem"]], marker="o", capsize=3)
        ax.annotate(method, (s["reward"], s[key]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("optimised reward (mean ± s.e.)")
    ax.set_ylabel(f"held-out judge: {judge} (mean ± s.e.)")
    ax.set_title("Does the held-out judge agree?")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def darwin_search(trace: dict[str, Any], path: Path, original: str | None = None) -> Path:
    """One Darwin search: every beam's reward at every period, the replacements, and the instruction that won.

    One panel per cycle. A line is a beam slot, coloured by the instruction it decodes from. After each period the
    top-k slots (filled dots) survive; each other unfinished slot is replaced (x) and adopts a top-k slot's
    response (dotted arrow from the donor). The gold star is the answer.
    """
    plt = _pyplot()
    cycles = trace["cycles"]
    original = original or trace["prompt"]["request"]
    end = trace["config"]["max_new_tokens"]
    fig, axes = plt.subplots(1, len(cycles), figsize=(5.5 * len(cycles), 6.2), sharey=True, squeeze=False)
    palette = plt.get_cmap("tab10")
    answer_source = trace.get("answer_source") or ""
    for ax, cycle in zip(axes[0], cycles):
        periods = cycle["periods"]
        xs = [p["tokens"] for p in periods] + [end]  # the last point: each slot's finished response
        rewards = [p["rewards"] for p in periods] + [cycle["final_rewards"]]
        labels = [_variant_label(i, cycle["parent"]) for i in cycle["instructions"]]
        colour = {label: palette(n % 10) for n, label in enumerate(dict.fromkeys(labels))}
        for slot, label in enumerate(labels):
            ys = [r[slot] for r in rewards]
            replaced_at = {k for k, p in enumerate(periods) for r, _ in p["replacements"] if r == slot}
            for k in range(len(xs) - 1):  # a replaced slot's own line ends; the donor's arrow takes over
                if k not in replaced_at:
                    ax.plot(xs[k : k + 2], ys[k : k + 2], color=colour[label], alpha=0.85, lw=1.5)
            ax.plot([], [], color=colour[label], lw=1.5,
                    label=f"slot {slot}: {label}" if label not in labels[:slot] else f"slot {slot}: (same)")
            for p, x, y in zip(periods, xs, ys):
                if slot in p["top"]:
                    ax.plot(x, y, "o", color=colour[label], ms=6)
        for k, p in enumerate(periods):
            for replaced, donor in p["replacements"]:
                ax.plot(xs[k], p["rewards"][replaced], "x", color="black", ms=7)
                ax.annotate("", xy=(xs[k + 1], rewards[k + 1][replaced]), xytext=(xs[k], p["rewards"][donor]),
                            arrowprops={"arrowstyle": "->", "ls": ":", "color": "gray", "lw": 1})
        if answer_source.startswith(f"cycle {cycle['index']} slot "):
            slot = int(answer_source.rsplit(" ", 1)[1])
            ax.plot(end, cycle["final_rewards"][slot], "*", color="gold", ms=18, mec="black", zorder=5,
                    label=f"the answer (slot {slot})")
        parent = _variant_label(cycle["parent"], original)
        archive = [f"  {_archive_label(e, cycle, original)}" for e in cycle["archive_after"]]
        ax.set_title("\n".join([f"cycle {cycle['index'] + 1}: mutating {_short(parent, 50)}", "archive after it:",
                                *archive]), fontsize=9, loc="left")
        ax.set_xlabel("response tokens decoded (last point: finished response)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    axes[0][0].set_ylabel("reward against the original instruction")
    seed = trace.get("seed_sample")
    note = f"  (plain seed sample: {seed['reward']:.3f})" if seed else ""
    config = trace["config"]
    fig.suptitle(_short(f"Darwin on: {original}", 110) + note + "\n" +
                 f"Each line is a beam decoding from one variant of the instruction (legend: what the variant adds). "
                 f"Every {config['replacement_period']} tokens all partial answers are scored against the original "
                 f"instruction;\nthe top {config['keep_top']} (o) are kept, every other beam (x) adopts a kept "
                 f"beam's answer so far (··>) and continues it under its own instruction.  \u2605 the answer",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _short(text: str, width: int) -> str:
    return textwrap.shorten(" ".join(text.split()), width, placeholder="…")


def _variant_label(instruction: str, original: str) -> str:
    """What a variant adds to the original instruction ("+ Answer step by step."), or the whole rewrite."""
    if instruction == original:
        return "original"
    if original in instruction:
        head, _, tail = (part.strip() for part in instruction.partition(original))
        extra = f"{head} … {tail}" if head and tail else f"(before) {head}" if head else tail
        return _short("+ " + extra, 60)
    return _short(instruction, 60)


def _archive_label(entry: dict[str, Any], cycle: dict[str, Any], original: str) -> str:
    """An archive entry named by the slot whose instruction it is, when this cycle made it, with its reward."""
    instruction, reward = entry["instruction"], entry["reward"]
    if instruction in cycle["instructions"]:
        label = f"slot {cycle['instructions'].index(instruction)}'s instruction"
    else:
        label = _short(_variant_label(instruction, original), 50)
    new = all(instruction != e["instruction"] for e in cycle["archive_before"])
    score = f", reward {reward:.2f}" if reward is not None else ""
    return f"{label} ({'new' if new else 'kept'}{score})"
