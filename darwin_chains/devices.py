"""Which device to run on and which dtype to run in there: chosen by what each model's numbers must promise.

A policy runs in the dtype its hardware runs fast (bf16 or fp16 on accelerators, fp32 on CPU). A feature encoder
(the default reward's SmolLM2 layers) runs in fp32 everywhere unless told otherwise: its features are compared
across calls (a beam's reward this period against another's, the reward a search reports against a rescore), and in
bf16 a row's numbers depend on the shape of the call that computed them on some CPUs (AMX). bf16 is an opt-in
(`DARWIN_CHAINS_FEATURE_DTYPE=bf16`), faster where the CPU runs it natively (benchmarks/reward/README.md).
"""
from __future__ import annotations

import os
from typing import Any

from .errors import ConfigError

FEATURE_DTYPE_ENV = "DARWIN_CHAINS_FEATURE_DTYPE"
BATCH_INVARIANT_ENV = "DARWIN_CHAINS_BATCH_INVARIANT"
#: The dtypes a feature encoder can run in, by the names users write.
FEATURE_DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}


def default_device() -> str:
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_bf16() -> str | None:
    """How this CPU computes bf16 in hardware: "amx" (AMX tiles), "avx512_bf16", or None (emulated, several times
    slower than fp32). torch's CPU capability (AVX512) does not tell these apart, and their bf16 numbers differ."""
    import torch

    for name, probe in (("amx", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported")):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return name
    return None


def default_dtype(device: str) -> Any:
    """A policy's dtype: bf16 (or fp16) on accelerators, fp32 on cpu, where sampling should match the reference."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def feature_dtype_name(dtype: Any = None) -> str:
    """A feature encoder's dtype by name ("float32" or "bfloat16"): `dtype` (a torch dtype, or a name such as "fp32"
    or "bf16") when given, else $DARWIN_CHAINS_FEATURE_DTYPE, else float32, on every device. Imports no torch."""
    source = "dtype" if dtype is not None else FEATURE_DTYPE_ENV
    given = dtype if dtype is not None else os.environ.get(FEATURE_DTYPE_ENV) or "fp32"
    name = str(given).removeprefix("torch.").strip().lower()
    if name not in FEATURE_DTYPES:
        raise ConfigError(f"{source} {given!r} is not a feature dtype; use fp32 (exact, the default) or bf16 "
                          "(faster on CPUs with native bf16, approximate)")
    return FEATURE_DTYPES[name]


def feature_dtype(dtype: Any = None) -> Any:
    """The torch dtype `feature_dtype_name` names."""
    import torch

    return getattr(torch, feature_dtype_name(dtype))


def batch_invariance(value: bool | None = None) -> bool:
    """Whether a local policy keeps a seeded beam's numbers the same alone or beside other searches: `value` when
    given, else $DARWIN_CHAINS_BATCH_INVARIANT, else off (faster: rows share attention calls, `attention.py`)."""
    if value is not None:
        return bool(value)
    given = os.environ.get(BATCH_INVARIANT_ENV, "").strip().lower()
    if given in ("", "0", "false", "no", "off"):
        return False
    if given in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{BATCH_INVARIANT_ENV}={given!r} is not a switch; use 1 (batch invariant: the same numbers "
                      "beside other searches, a lone search slower) or 0 (the default)")
