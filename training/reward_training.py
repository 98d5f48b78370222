"""Train a preference reward head: a Bradley-Terry (pairwise logistic) model over a backbone's features.

The data are AlpacaEval 2 judgments: GPT-4 Turbo compared answers from 24 models with one reference answer, so two
answers to the same instruction can be ranked through their preferences. The head is linear in the features of
`darwin_chains.rewards.preference`, so scoring costs one backbone pass and a dot product. Two backbones:

- `smollm2` (the default reward): mean layer-15 hidden state of the response's first 256 tokens, read after the
  chat-templated instruction. One forward pass per answer gives the means of its prefixes too.
- `minilm`: all-MiniLM-L6-v2 embeddings of instruction and response (each prefix costs one more pass).

Darwin scores partial responses every few tokens, so validation also reports agreement on the first 40, 80 and 160
tokens of the answers, and training can add prefix pairs (`prefix_tokens`: a pair of prefixes keeps the label of
the full answers). The MiniLM head needed them; the SmolLM2 head ranks prefixes as well without them. Pairs of an
answer to the instruction against an answer to another instruction teach the head that being on topic comes first.
`Settings.recipe(backbone)` holds what each shipped head was trained with.

Instructions are split into train and validation with the seed; only the validation split is used to pick the
regularisation. Backbone features are cached on disk, per dtype (SmolLM2: 20 minutes for the 11,310 answers on 2
CPU cores, once), so a rerun takes a minute or two.

This folder is not part of the installed package: it reads the judgments (--prefs) and the project's pair builder
(--pairs-tool) from paths it is given, by default the checkout's sibling folder ../shared. Run it from the
repository root of a checkout:

    python -m training.reward_training --seed 0 --out darwin_chains/rewards/weights/preference.json
    python -m training.reward_training --seed 0 --backbone minilm \
        --out darwin_chains/rewards/weights/preference-minilm.json
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import itertools
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from darwin_chains.embedded import cache_dir
from darwin_chains.errors import require

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent  # the checkout this folder sits in
SHARED = REPO.parent / "shared"  # the project's shared data and tools, beside the checkout
DEFAULT_DATA = SHARED / "data" / "alpaca_eval_prefs_dev.jsonl.gz"
DEFAULT_PAIRS_TOOL = SHARED / "tools" / "preference_pairs.py"
PREFIX_TOKENS = (40, 80, 160)
CUTS = (40, 80, 128, 160, 256)  # SmolLM2 backbone: prefix means cached per answer; 256 = what the reward reads
WHOLE = 256
SEP = "\x00"  # a SmolLM2 cache key is instruction SEP answer: the features depend on both


@dataclass
class Settings:
    """Everything that decides the weights; saved beside them."""

    seed: int = 0
    backbone: str = "smollm2"
    validation_share: float = 0.2
    min_gap: float = 0.1
    off_topic_per_instruction: int = 4
    constructed_weight: float = 1.0  # of the off-topic and looping pairs, against a judged pair's 1
    degenerate_per_instruction: int = 0
    prefix_tokens: tuple[int, ...] = (40, 80)
    l2_grid: tuple[float, ...] = (0.03, 0.1, 0.3)
    l2: float | None = None
    epochs: int = 300
    tokens: str = "SmolLM2-135M-Instruct tokenizer (prefix cuts)"
    data: str = field(default=str(DEFAULT_DATA))

    @classmethod
    def recipe(cls, backbone: str, **overrides) -> Settings:
        """The settings the shipped head of `backbone` was trained with."""
        return cls(backbone=backbone, **{**RECIPES[backbone], **overrides})


#: What validation chose per backbone (benchmarks/reward/README.md). The SmolLM2 head ranks prefixes as well
#: without prefix pairs, and needs the off-topic pairs weighted up to learn that topic comes first.
RECIPES: dict[str, dict] = {
    "smollm2": {"prefix_tokens": (), "constructed_weight": 3.0, "degenerate_per_instruction": 4, "l2_grid": (0.3, 1.0)},
    "minilm": {},
}


# --- data ---------------------------------------------------------------------------------------------------------

def load_rows(path: str | Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def split_instructions(instructions: Sequence[str], seed: int, validation_share: float) -> tuple[set[str], set[str]]:
    """Train and validation instruction sets: a seeded shuffle of the sorted unique instructions."""
    unique = sorted(set(instructions))
    random.Random(seed).shuffle(unique)
    n_val = round(len(unique) * validation_share)
    return set(unique[n_val:]), set(unique[:n_val])


def training_pairs(rows: Sequence[dict], min_gap: float) -> list[tuple[str, str, str, float]]:
    """Every (instruction, better, worse, gap) whose judge preferences differ by at least min_gap.

    Includes the GPT-4 Turbo reference answer (`output_1`, preference 1.5 by construction) as one more contestant.
    """
    by_instruction: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        answers = by_instruction[row["instruction"]]
        answers[row["output_2"]] = float(row["preference"])
        answers.setdefault(row["output_1"], 1.5)
    out = []
    for instruction, answers in by_instruction.items():
        for (a, pa), (b, pb) in itertools.combinations(answers.items(), 2):
            if abs(pa - pb) >= min_gap:
                out.append((instruction, a, b, pa - pb) if pa > pb else (instruction, b, a, pb - pa))
    return out


def off_topic_pairs(rows: Sequence[dict], per_instruction: int, seed: int) -> list[tuple[str, str, str, float]]:
    """(instruction, an answer to it, an answer to another instruction, 0): any on-topic answer beats an off-topic
    one. Judge pairs never show this, and without it the head learns which topics tend to win instead."""
    by_instruction: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_instruction[row["instruction"]].append(row["output_2"])
    instructions = sorted(by_instruction)
    rng = random.Random(seed)
    out = []
    for instruction in instructions:
        others = [i for i in instructions if i != instruction]
        if not others:
            break
        for _ in range(per_instruction):
            on_topic = rng.choice(sorted(by_instruction[instruction]))
            off_topic = rng.choice(sorted(by_instruction[rng.choice(others)]))
            out.append((instruction, on_topic, off_topic, 0.0))
    return out


def degenerate(text: str, rng: random.Random) -> str:
    """A looping version of an answer, as a small model produces when it degenerates: a few words of the answer,
    then one word, emoji or line repeated to about the answer's length."""
    words = text.split() or ["the"]
    lines = [line for line in text.splitlines() if line.strip()] or [text]
    start = rng.randint(1, min(12, len(words)))
    kind = rng.choice(("word", "glued", "line"))
    if kind == "line":
        line = rng.choice(lines[:3])
        return "\n".join([line] * max(3, len(text) // max(1, len(line))))
    unit = rng.choice(words[:start] + ["\U0001F30D", "!", "..."])
    joiner = "" if kind == "glued" else " "
    return " ".join(words[:start]) + " " + joiner.join([unit] * max(8, len(words) - start))


def degenerate_pairs(rows: Sequence[dict], per_instruction: int, seed: int) -> list[tuple[str, str, str, float]]:
    """(instruction, an answer, a looping version of an answer): the judged answers are all fluent, so without these
    the head has never seen a loop and may score one highly (it did: an emoji repeated 127 times won a Best-of-5)."""
    by_instruction: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        by_instruction[row["instruction"]].append(row["output_2"])
    rng = random.Random(seed)
    out = []
    for instruction in sorted(by_instruction):
        answers = sorted(by_instruction[instruction])
        for _ in range(per_instruction):
            out.append((instruction, rng.choice(answers), degenerate(rng.choice(answers), rng), 0.0))
    return out


class PrefixCutter:
    """Cuts a response to its first n SmolLM2 tokens, as the embedded policy would have produced it."""

    def __init__(self):
        from transformers import AutoTokenizer

        from darwin_chains.embedded import smollm2_dir

        self.tokenizer = AutoTokenizer.from_pretrained(smollm2_dir())

    def __call__(self, text: str, n: int) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        return text if len(ids) <= n else self.tokenizer.decode(ids[:n])


# --- embeddings, cached on disk -----------------------------------------------------------------------------------

def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Backbone features by key hash (a text, or instruction SEP answer), stored as append-only shards so an
    interrupted run keeps its work."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or cache_dir() / "reward-training" / "minilm-256"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.vectors: dict[str, np.ndarray] = {}
        for shard in sorted(self.directory.glob("shard-*.npz")):
            with np.load(shard) as data:
                self.vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def missing(self, texts: Sequence[str]) -> list[str]:
        seen, out = set(), []
        for t in texts:
            k = _key(t)
            if k not in self.vectors and k not in seen:
                seen.add(k)
                out.append(t)
        return out

    def fill(self, texts: Sequence[str], embedder=None, shard_size: int = 512) -> None:
        """Embed the texts not cached yet, shortest first (less padding), saving a shard every shard_size texts."""
        todo = sorted(self.missing(texts), key=len)
        if not todo:
            return
        if embedder is None:
            from darwin_chains.embedded.embedder import Embedder

            embedder = Embedder.minilm()
        start = time.time()
        for i in range(0, len(todo), shard_size):
            chunk = todo[i : i + shard_size]
            vectors = embedder.encode(chunk).numpy().astype(np.float32)
            keys = [_key(t) for t in chunk]
            self.vectors.update(zip(keys, vectors))
            name = self.directory / f"shard-{time.time_ns()}.npz"
            np.savez(name, keys=np.array(keys), vectors=vectors)
            log.info("embedded %d/%d texts (%.0f s)", min(i + shard_size, len(todo)), len(todo), time.time() - start)

    def get(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.vectors[_key(t)] for t in texts])


# --- features and pairs -------------------------------------------------------------------------------------------

class Table:
    """Feature rows for (instruction, text) items. A text cut from an answer is featurised as the backbone sees
    that prefix of the answer. `want` what will be needed, `fill` the cache once, then `row` and `matrix`."""

    def __init__(self, cache: EmbeddingCache, cutter: PrefixCutter | None):
        self.cache, self.cutter = cache, cutter
        self.index: dict[tuple[str, str], int] = {}
        self.items: list[tuple[str, str]] = []

    def want(self, instruction: str, answer: str, cuts: Sequence[int] = ()) -> None:
        raise NotImplementedError

    def fill(self) -> None:
        raise NotImplementedError

    def feature_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def features(self, instruction: str, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def row(self, instruction: str, text: str, answer: str | None = None, cut: int | None = None) -> int:
        key = (instruction, text)
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(key)
        return self.index[key]

    def matrix(self) -> np.ndarray:
        by_instruction: dict[str, list[int]] = defaultdict(list)
        for i, (instruction, _) in enumerate(self.items):
            by_instruction[instruction].append(i)
        out = None
        for instruction, rows in by_instruction.items():
            block = self.features(instruction, [self.items[i][1] for i in rows])
            if out is None:
                out = np.empty((len(self.items), block.shape[1]), dtype=np.float32)
            out[rows] = block
        return out


class MiniLMTable(Table):
    """MiniLM embeddings by text: a prefix is embedded as text of its own."""

    def __init__(self, cache: EmbeddingCache | None = None, cutter: PrefixCutter | None = None):
        super().__init__(cache or EmbeddingCache(), cutter)
        self._texts: set[str] = set()

    def want(self, instruction: str, answer: str, cuts: Sequence[int] = ()) -> None:
        self._texts |= {instruction, answer, *(self.cutter(answer, n) for n in cuts)}

    def fill(self) -> None:
        self.cache.fill(sorted(self._texts))

    def feature_names(self) -> tuple[str, ...]:
        from darwin_chains.rewards.preference import MINILM_FEATURES

        return MINILM_FEATURES

    def features(self, instruction: str, texts: Sequence[str]) -> np.ndarray:
        from darwin_chains.rewards.preference import minilm_features

        return minilm_features(self.cache.get([instruction])[0], self.cache.get(texts), texts)


class _PrefixMeans:
    """`encode(keys)` for EmbeddingCache: SmolLM2 response means of "instruction SEP answer" keys at every cut.
    `incremental`: read block by block as the reward scores (`ResponseEncoder.means`), in passes of `chunk`
    answers (each pass holds its answers' whole caches); otherwise one full pass per answer (`encode`)."""

    def __init__(self, incremental: bool = False, chunk: int = 32, dtype: str | None = None):
        from darwin_chains.rewards.hidden_states import ResponseEncoder

        self.encoder = ResponseEncoder(max_response_tokens=WHOLE, dtype=dtype)
        self.incremental, self.chunk = incremental, chunk

    def encode(self, keys: Sequence[str]):
        import torch

        items = [tuple(k.split(SEP, 1)) for k in keys]
        if not self.incremental:
            return torch.from_numpy(self.encoder.encode(items, CUTS).reshape(len(keys), -1))
        # Only block ends can be read this way: other cuts (128) are NaN, so training on them fails loudly.
        size = self.encoder.block_tokens
        ends = [c for c in CUTS if c % size == 0 or c >= WHOLE]
        out = np.full((len(items), len(CUTS), self.encoder.dim), np.nan, dtype=np.float32)
        for i in range(0, len(items), self.chunk):
            out[i : i + self.chunk, [CUTS.index(c) for c in ends]] = self.encoder.means(items[i : i + self.chunk], ends)
        return torch.from_numpy(out.reshape(len(keys), -1))


class _InstructionMeans:
    """`encode(instructions)` for EmbeddingCache: SmolLM2's mean hidden state over each instruction's tokens."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, instructions: Sequence[str]):
        import torch

        return torch.from_numpy(np.stack([self.encoder.instruction(i) for i in instructions]))


def encoder_dtype(dtype: str | None = None) -> str:
    """The dtype the SmolLM2 encoder runs in (`devices.feature_dtype_name`: `dtype`, else
    $DARWIN_CHAINS_FEATURE_DTYPE, else fp32), short: bf16 or fp32."""
    from darwin_chains.devices import feature_dtype_name

    return {"bfloat16": "bf16", "float32": "fp32"}[feature_dtype_name(dtype)]


def hidden_state_cache(incremental: bool = False, dtype: str | None = None) -> Path:
    """Where the SmolLM2 features are cached: one folder per dtype the encoder runs in, so features of two dtypes
    never mix in one table. bf16 keeps the original name; features read block by block (`incremental`, as the
    reward scores) get their own folder too."""
    suffix = "" if encoder_dtype(dtype) == "bf16" else f"-{encoder_dtype(dtype)}"
    return cache_dir() / "reward-training" / f"smollm2-L15-cuts{suffix}{'-blocks' if incremental else ''}"


class HiddenStateTable(Table):
    """SmolLM2 prefix means by (instruction, answer): one cached forward pass serves the answer and its prefixes."""

    def __init__(self, cache: EmbeddingCache | None = None, cutter: PrefixCutter | None = None,
                 incremental: bool = False, dtype: str | None = None):
        super().__init__(cache or EmbeddingCache(hidden_state_cache(incremental, dtype)), cutter)
        self.incremental, self.dtype = incremental, dtype
        self.instructions = EmbeddingCache(self.cache.directory / "instructions")
        self._keys: set[str] = set()
        self.origin: dict[tuple[str, str], tuple[str, int]] = {}  # (instruction, text) -> (answer, cut)

    def want(self, instruction: str, answer: str, cuts: Sequence[int] = ()) -> None:
        self._keys.add(f"{instruction}{SEP}{answer}")
        self._keys.add(instruction)  # an instruction key (no SEP) is the instruction's own mean
        for n in cuts:
            self.origin.setdefault((instruction, self.cutter(answer, n)), (answer, n))

    def fill(self) -> None:
        answers = sorted(k for k in self._keys if SEP in k)
        instructions = sorted(k for k in self._keys if SEP not in k)
        if self.cache.missing(answers) or self.instructions.missing(instructions):
            means = _PrefixMeans(self.incremental, dtype=self.dtype)
            self.cache.fill(answers, embedder=means)
            self.instructions.fill(instructions, embedder=_InstructionMeans(means.encoder))

    def feature_names(self) -> tuple[str, ...]:
        from darwin_chains.rewards.preference import FEATURES

        return FEATURES

    def row(self, instruction: str, text: str, answer: str | None = None, cut: int | None = None) -> int:
        if answer is not None:
            self.origin.setdefault((instruction, text), (answer, cut or WHOLE))
        return super().row(instruction, text)

    def features(self, instruction: str, texts: Sequence[str]) -> np.ndarray:
        from darwin_chains.rewards.preference import features

        sources = [self.origin.get((instruction, t), (t, WHOLE)) for t in texts]
        means = self.cache.get([f"{instruction}{SEP}{answer}" for answer, _ in sources]).reshape(len(texts), len(CUTS), -1)
        hidden = means[np.arange(len(texts)), [CUTS.index(cut) for _, cut in sources]]
        return features(self.instructions.get([instruction])[0], hidden, texts)


TABLES = {"smollm2": HiddenStateTable, "minilm": MiniLMTable}
BACKBONES = {
    "smollm2": f"SmolLM2-135M-Instruct, mean residual stream after 15 of 30 layers over the first {WHOLE} response "
               "tokens, read after the chat-templated instruction",
    "minilm": "all-MiniLM-L6-v2 (max 256 wordpieces, mean-pooled, normalised)",
}


def pair_rows(table: Table, pairs: Sequence[tuple[str, str, str, float]], cutter: PrefixCutter | None,
              prefix_tokens: Sequence[int]) -> np.ndarray:
    """(better row, worse row) for every pair, whole and cut to each prefix length (skipping cuts that change
    neither answer, which would only repeat the whole pair)."""
    out = []
    for instruction, better, worse, _ in pairs:
        out.append((table.row(instruction, better), table.row(instruction, worse)))
        for n in prefix_tokens:
            b, w = cutter(better, n), cutter(worse, n)
            if (b, w) != (better, worse) and b != w:
                out.append((table.row(instruction, b, better, n), table.row(instruction, w, worse, n)))
    return np.array(out, dtype=np.int64)


# --- Bradley-Terry fit --------------------------------------------------------------------------------------------

def fit(x: np.ndarray, pairs: np.ndarray, l2: float, max_iter: int = 300, features: Sequence[str] | None = None,
        weights: np.ndarray | None = None):
    """Linear Bradley-Terry weights on standardised features: minimise the (weighted) mean of
    softplus(-(s_better - s_worse)) plus l2/2 |w|^2 with L-BFGS (deterministic: no sampling, zero start)."""
    from darwin_chains.rewards.preference import PreferenceHead

    minimize = require("scipy.optimize", extra="train").minimize

    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-6] = 1.0
    z = ((x - mean) / scale).astype(np.float64)
    better, worse = pairs[:, 0], pairs[:, 1]
    n_rows = len(z)
    share = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64)
    share = share / share.sum()

    def loss(w: np.ndarray):
        s = z @ w
        margin = s[better] - s[worse]
        value = share @ np.logaddexp(0.0, -margin) + 0.5 * l2 * w @ w
        g_margin = -share / (1.0 + np.exp(margin))
        g_s = np.bincount(better, g_margin, n_rows) - np.bincount(worse, g_margin, n_rows)
        return value, z.T @ g_s + l2 * w

    result = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    scores = z @ result.x
    return PreferenceHead(result.x, mean, scale, 0.0, float(scores.min()) - 1.0, **({"features": features} if features else {}))


# --- validation on the shared yardstick ---------------------------------------------------------------------------

def yardstick(path: str | Path = DEFAULT_PAIRS_TOOL):
    """The project's shared pair builder (shared/tools/preference_pairs.py), so figures mean the same thing."""
    return _load_pairs_tool(Path(path).resolve())


@lru_cache(maxsize=4)
def _load_pairs_tool(path: Path):
    from darwin_chains.errors import ConfigError

    spec = importlib.util.spec_from_file_location("preference_pairs", path)
    if spec is None or not path.exists():
        raise ConfigError(f"the preference pair builder is missing: {path} (pass --pairs-tool PATH)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validation_pairs(data: str | Path, instructions: set[str],
                     pairs_tool: str | Path = DEFAULT_PAIRS_TOOL) -> list[dict]:
    return [p for p in yardstick(pairs_tool).pairs(str(data)) if p["instruction"] in instructions]


def agreement_table(score, pairs: Sequence[dict], cutter: PrefixCutter | None = None,
                    prefix_tokens: Sequence[int] = (), pairs_tool: str | Path = DEFAULT_PAIRS_TOOL
                    ) -> dict[str, float | int]:
    """Agreement with the judge on all pairs and length-matched pairs, whole and cut to prefixes.

    `score(instruction, [texts]) -> scores`. Ties count as disagreement (the pairs' order is random).
    """
    ys = yardstick(pairs_tool)
    matched = ys.length_matched(pairs)
    out: dict[str, float | int] = {"pairs": len(pairs), "length_matched_pairs": len(matched)}
    for label, n in [("whole", None), *[(f"prefix{n}", n) for n in prefix_tokens]]:
        def prefer_a(p, n=n):
            a, b = (p["a"], p["b"]) if n is None else (cutter(p["a"], n), cutter(p["b"], n))
            sa, sb = score(p["instruction"], [a, b])
            return sa > sb
        out[f"{label}_all"] = round(ys.agreement(pairs, prefer_a), 4)
        out[f"{label}_length_matched"] = round(ys.agreement(matched, prefer_a), 4)
    return out


def first_wins(head, table: Table, pairs: Sequence[tuple[str, str, str, float]]) -> float:
    """Share of constructed (instruction, should win, should lose) pairs where the first answer scores higher."""
    score = head_scorer(head, table)
    return round(sum(a > b for a, b in (score(i, [x, y]) for i, x, y, _ in pairs)) / max(1, len(pairs)), 4)


def head_scorer(head, table: Table):
    def score(instruction: str, texts: list[str]) -> list[float]:
        return head(table.features(instruction, texts)).tolist()

    return score


# --- the whole run ------------------------------------------------------------------------------------------------

def train(settings: Settings, table: Table | None = None, rows: list[dict] | None = None,
          evaluate: bool = True, pairs_tool: str | Path = DEFAULT_PAIRS_TOOL):
    """Fit the head on the train instructions; pick L2 on the validation instructions; return (head, report)."""
    started = time.time()
    rows = rows if rows is not None else load_rows(settings.data)
    train_set, val_set = split_instructions([r["instruction"] for r in rows], settings.seed,
                                            settings.validation_share)
    train_rows = [r for r in rows if r["instruction"] in train_set]
    judged = training_pairs(train_rows, settings.min_gap)
    # Constructed pairs teach what the judged answers never show: topic first, and no loops.
    constructed = off_topic_pairs(train_rows, settings.off_topic_per_instruction, settings.seed)
    constructed += degenerate_pairs(train_rows, settings.degenerate_per_instruction, settings.seed)
    val = validation_pairs(settings.data, val_set, pairs_tool) if evaluate else []
    val_rows = [r for r in rows if r["instruction"] in val_set]
    # The checks' constructed pairs have a seed of their own, so they differ from the training ones.
    on_topic = off_topic_pairs(val_rows, 4, seed=99) if val else []
    loops = degenerate_pairs(val_rows, 4, seed=99) if val else []
    cutter = PrefixCutter() if settings.prefix_tokens or val else None
    table = table or TABLES[settings.backbone](cutter=cutter)
    table.cutter = table.cutter or cutter
    for instruction, better, worse, _ in judged + constructed:
        table.want(instruction, better, settings.prefix_tokens)
        table.want(instruction, worse, settings.prefix_tokens)
    for p in val:
        for answer in (p["a"], p["b"]):
            table.want(p["instruction"], answer, PREFIX_TOKENS)
    for instruction, on, off, _ in on_topic + loops:
        table.want(instruction, on)
        table.want(instruction, off)
    table.fill()
    judge_rows = pair_rows(table, judged, cutter, settings.prefix_tokens)
    constructed_rows = pair_rows(table, constructed, cutter, settings.prefix_tokens)
    pairs = np.concatenate([judge_rows, constructed_rows])
    weights = np.r_[np.ones(len(judge_rows)), np.full(len(constructed_rows), settings.constructed_weight)]
    x = table.matrix()
    log.info("%d training rows, %d pairs, %d features", len(x), len(pairs), x.shape[1])

    grid = [settings.l2] if settings.l2 is not None else list(settings.l2_grid)
    best, tried = None, {}
    for l2 in grid:
        head = fit(x, pairs, l2, settings.epochs, table.feature_names(), weights)
        figure = (agreement_table(head_scorer(head, table), val, pairs_tool=pairs_tool)["whole_length_matched"]
                  if val else 0.0)
        tried[f"{l2:g}"] = figure
        log.info("l2=%g: validation length-matched agreement %.3f", l2, figure)
        if best is None or figure > best[0]:
            best = (figure, l2, head)
    _, l2, head = best
    report = {}
    if val:
        report = agreement_table(head_scorer(head, table), val, cutter, PREFIX_TOKENS, pairs_tool)
        report["on_topic_over_off_topic"] = first_wins(head, table, on_topic)
        report["fluent_over_looping"] = first_wins(head, table, loops)
    head.meta = {
        "training": {**asdict(settings), "data": Path(settings.data).name, "l2": l2, "l2_tried": tried,
                     "train_instructions": len(train_set), "validation_instructions": len(val_set),
                     "training_pairs": int(len(pairs)), "backbone": BACKBONES[settings.backbone],
                     **({"feature_dtype": encoder_dtype(getattr(table, "dtype", None))}
                        if settings.backbone == "smollm2" else {}),
                     "length_weight_per_log_word": round(head.length_weight, 4),
                     "seconds": round(time.time() - started, 1)},
        "validation": report,
    }
    return head, report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbone", choices=sorted(TABLES), default="smollm2")
    parser.add_argument("--out", type=Path, required=True,
                        help="where to write the head's JSON (the packaged ones: darwin_chains/rewards/weights/)")
    parser.add_argument("--prefs", "--data", dest="prefs", type=Path, default=DEFAULT_DATA,
                        help="AlpacaEval judgments, .jsonl.gz (default: ../shared/data/alpaca_eval_prefs_dev.jsonl.gz "
                             "beside this checkout)")
    parser.add_argument("--pairs-tool", type=Path, default=DEFAULT_PAIRS_TOOL,
                        help="the project's pair builder (default: ../shared/tools/preference_pairs.py beside this "
                             "checkout)")
    parser.add_argument("--l2", type=float, default=None, help="skip the validation search and use this L2")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    head, report = train(Settings.recipe(args.backbone, seed=args.seed, data=str(args.prefs), l2=args.l2),
                         pairs_tool=args.pairs_tool)
    head.save(args.out)
    print(json.dumps({"out": str(args.out), "validation": report, "l2": head.meta["training"]["l2"],
                      "length_weight": head.length_weight}, indent=1))


if __name__ == "__main__":
    main()
