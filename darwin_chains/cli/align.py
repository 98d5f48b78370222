"""`darwin-chains align`: one search from the command line, with a progress bar on stderr."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from ..config import SearchConfig


def command(args: argparse.Namespace) -> int:
    """Print the best answer (or, with --json, the whole result) to the instruction in `args`."""
    from .. import defaults
    from ..prompt import Prompt
    from ..search import Search
    from . import config_from_args, quiet_transformers

    config = config_from_args(args)  # a bad setting fails here, before any model loads
    instruction = sys.stdin.read() if args.instruction == "-" else args.instruction
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": instruction}]
    prompt = Prompt.of(messages)  # an empty instruction fails here too
    defaults.check(args.reward, args.mutator)
    quiet_transformers()
    policy = defaults.policy(args.policy)
    search = Search(policy, defaults.reward(args.reward, policy),
                    defaults.mutator(args.mutator, policy) if config.mutates else None, config)
    with Progress(config, args.progress) as progress:
        result = search.run(prompt, drafts=args.draft, on_event=progress)
    if args.json:
        print(result.to_json(indent=2))
    else:
        print(result.answer)
        if result.finish_reason == "length":
            why = result.trace.stopped or f"--max-new-tokens {config.max_new_tokens}"
            print(f"(the answer was cut off by {why}; raise it for a whole answer)", file=sys.stderr)
    return 0


class Progress:
    """A tqdm bar over the search's periods, on stderr."""

    def __init__(self, config: SearchConfig, mode: str):
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self.per_cycle = math.ceil(config.max_new_tokens / config.replacement_period) if config.replaces else 1
        self.total = self.per_cycle * config.mutation_cycles_used
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="darwin", unit="period", file=sys.stderr, leave=False)
        return self

    def __call__(self, kind: str, data: dict) -> None:
        if self.bar is None:
            return
        if kind == "period_scored":
            self.bar.update(1)
            self.bar.set_postfix(cycle=data["cycle"], best=f"{max(data['rewards']):.3f}")
        elif kind == "archive_updated":  # beams that end early leave a cycle with fewer periods
            self.bar.n = self.per_cycle * (data["cycle"] + 1)
            self.bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()
