"""`darwin-chains`: align an answer from the command line.

    darwin-chains align "Give three tips for writing a clear email."
    darwin-chains align --method best-of-n --mutants 5 --json "..."
    darwin-chains serve --policy openai:MODEL@http://127.0.0.1:8000/v1 --port 8100

Bad input exits with status 2 and one line on stderr; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from ..config import METHODS, SearchConfig
from ..errors import DarwinError

log = logging.getLogger("darwin_chains")


def _search_args(parser: argparse.ArgumentParser) -> None:
    d = SearchConfig()
    g = parser.add_argument_group("search")
    g.add_argument("--method", choices=METHODS, default=d.method)
    g.add_argument("--mutants", type=int, default=d.mutants,
                   help="variants per cycle (n); for the baselines, the number of samples N")
    g.add_argument("--beams-per-mutant", type=int, default=d.beams_per_mutant, help="beams per variant (nb)")
    g.add_argument("--replacement-period", "-m", type=int, default=d.replacement_period,
                   help="tokens between replacements (m)")
    g.add_argument("--keep-top", "-k", type=int, default=d.keep_top, help="beams kept at each replacement (top-k)")
    g.add_argument("--cycles", type=int, default=d.mutation_cycles, dest="mutation_cycles", help="mutation cycles")
    g.add_argument("--archive-size", type=int, default=d.archive_size, help="winners archived per cycle")
    g.add_argument("--look-ahead", type=int, default=d.look_ahead, help="throw-away tokens before scoring (l)")
    g.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    g.add_argument("--temperature", type=float, default=d.sampling.temperature)
    g.add_argument("--top-k", type=int, default=d.sampling.top_k, help="sampling top-k (0: off)")
    g.add_argument("--top-p", type=float, default=d.sampling.top_p)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--no-seed-sample", dest="seed_sample", action="store_false",
                   help="do not count a plain sample of the original instruction")
    g.add_argument("--reward-threshold", type=float, default=None, help="stop once an answer scores this much")
    g.add_argument("--time-budget", type=float, default=None, help="seconds; then return the best answer so far")
    c = parser.add_argument_group("components")
    c.add_argument("--policy", default=None, help="embedded (default), a model directory, or openai:MODEL@BASE_URL")
    c.add_argument("--reward", default="default",
                   help="default, preference, preference-minilm, relevance, relevance+distinct, judge or hf:PATH")
    c.add_argument("--mutator", default="template", help="template (default), llm or none")


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    fields = ("method", "mutants", "beams_per_mutant", "replacement_period", "keep_top", "mutation_cycles",
              "archive_size", "look_ahead", "max_new_tokens", "seed", "seed_sample", "reward_threshold",
              "time_budget", "temperature", "top_k", "top_p")
    return SearchConfig().replace(**{f: getattr(args, f) for f in fields})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="darwin-chains", description="Decode-time alignment with Darwin.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    align = sub.add_parser("align", help="search for the best answer to an instruction")
    align.add_argument("instruction", help="the instruction, or - to read it from stdin")
    align.add_argument("--system", default=None, help="a system message (context that mutation never rewrites)")
    align.add_argument("--draft", action="append", default=[], help="a draft answer to improve on (repeatable)")
    align.add_argument("--json", action="store_true", help="print answer, reward and the whole trace as JSON")
    align.add_argument("--progress", choices=("auto", "on", "off"), default="auto", help="progress bar on stderr")
    _search_args(align)

    bench = sub.add_parser("bench", help="compare methods on the same prompts, policy, reward and seeds")
    bench.add_argument("--prompts", nargs="+", default=["mt-bench:20", "alpaca:20"],
                       help="mt-bench[:N], alpaca[:N] (from --data-dir) or JSONL files of instructions")
    bench.add_argument("--data-dir", default=None, help="folder with the shared prompt files (default ../shared/data)")
    bench.add_argument("--methods", nargs="+", default=None, help="subset of the bench methods (default: all)")
    bench.add_argument("--judge", nargs="+", default=["reference", "relevance+distinct"],
                       help="held-out judges: reward specs, or 'reference' (similarity to a reference answer)")
    bench.add_argument("--out", default="bench.jsonl", help="results, appended; finished prompts are skipped")
    bench.add_argument("--plots", default=None, help="write the plots into this folder")
    bench.add_argument("--concurrency", type=int, default=1, help="prompts in flight at once (remote policies)")
    bench.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    _search_args(bench)

    serve = sub.add_parser("serve", help="serve Darwin as an OpenAI-compatible chat completions API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model-name", default=None, help="the model id /v1/models lists (default darwin:POLICY)")
    _search_args(serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="darwin-chains: %(levelname)s: %(message)s")
    try:
        return {"bench": _bench, "serve": _serve}.get(args.command, _align)(args)
    except KeyboardInterrupt:
        print("darwin-chains: interrupted", file=sys.stderr)
        return 130
    except (DarwinError, OSError) as exc:
        if args.debug:
            raise
        print(f"darwin-chains: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line, never a traceback, unless asked
        if args.debug:
            raise
        print(f"darwin-chains: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def _align(args: argparse.Namespace) -> int:
    from .. import defaults
    from ..search import Search

    config = config_from_args(args)  # a bad setting fails here, before any model loads
    instruction = sys.stdin.read() if args.instruction == "-" else args.instruction
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": instruction}]
    from ..prompt import Prompt

    prompt = Prompt.of(messages)  # an empty instruction fails here too
    defaults.check(args.reward, args.mutator)
    _quiet_transformers()
    policy = defaults.policy(args.policy)
    search = Search(policy, defaults.reward(args.reward, policy),
                    defaults.mutator(args.mutator, policy) if config.mutates else None, config)
    with _Progress(config, args.progress) as progress:
        result = search.run(prompt, drafts=args.draft, on_event=progress)
    if args.json:
        print(result.to_json(indent=2))
    else:
        print(result.answer)
    return 0


def _bench(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from .. import defaults
    from . import bench

    config = config_from_args(args)
    prompts = bench.load_prompts(args.prompts, Path(args.data_dir) if args.data_dir else None)
    for spec in args.judge:
        if spec != "reference":
            defaults.check(reward_spec=spec)
    defaults.check(args.reward, args.mutator)
    _quiet_transformers()
    policy = defaults.policy(args.policy)
    reward = defaults.reward(args.reward, policy)
    judges = {spec: bench.ReferenceSimilarity() if spec == "reference" else defaults.reward(spec, policy)
              for spec in args.judge}
    runner = bench.Bench(policy, reward, defaults.mutator(args.mutator, policy), judges, Path(args.out),
                         args.methods or tuple(bench.METHODS), config)
    total = len(prompts) * len(runner.methods)
    enabled = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    bar = None
    if enabled:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="bench", unit="run", file=sys.stderr)
        bar.update(sum(1 for p in prompts for m in runner.methods
                       if all((p.id, n) in runner.done() for n in bench._row_names(m))))
    try:
        asyncio.run(runner.run(prompts, args.concurrency, progress=(lambda p, m: bar.update(1)) if bar else None))
    finally:
        if bar is not None:
            bar.close()
    ids = {p.id for p in prompts}
    rows = [r for r in bench.read_rows(Path(args.out)) if r["prompt_id"] in ids]
    summary = bench.summarize(rows)
    Path(args.out).with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    print(bench.markdown(summary))
    if args.plots:
        from . import plots

        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        plots.reward_vs_tokens(summary, folder / "reward_vs_tokens.png")
        for spec in args.judge:
            plots.judge_vs_reward(summary, spec, folder / f"judge_{spec.replace('+', '_')}_vs_reward.png")
        traces = bench.read_rows(runner.traces) if runner.traces.exists() else []
        if traces:
            plots.darwin_search(bench.showcase(traces)["trace"], folder / "darwin_search.png")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .. import defaults
    from . import serve
    from ..search import Search

    config = config_from_args(args)  # the defaults every request may change
    defaults.check(args.reward, args.mutator)
    _quiet_transformers()
    policy = defaults.policy(args.policy)
    search = Search(policy, defaults.reward(args.reward, policy), defaults.mutator(args.mutator, policy), config)
    print(f"darwin-chains: serving {policy.name} at http://{args.host}:{args.port}/v1", file=sys.stderr)
    serve.run(search, host=args.host, port=args.port, model=args.model_name)
    return 0


def _quiet_transformers() -> None:
    """Loading bars from transformers would bury ours; library warnings still reach the log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


class _Progress:
    """A tqdm bar over the search's periods, on stderr."""

    def __init__(self, config: SearchConfig, mode: str):
        self.enabled = mode == "on" or (mode == "auto" and sys.stderr.isatty())
        self.per_cycle = math.ceil(config.max_new_tokens / config.replacement_period) if config.replaces else 1
        self.total = self.per_cycle * config.cycles
        self.bar: Any = None

    def __enter__(self) -> _Progress:
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


if __name__ == "__main__":
    raise SystemExit(main())
