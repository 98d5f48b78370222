"""Which device to run on and which dtype the hardware runs well there: chosen by capability, not by habit.

On CPUs without native bf16 (AVX2-only machines, for example), bf16 matmuls run about 5x slower than fp32, so
bf16 is used on a CPU only where AVX512-BF16 or AMX is present.
"""
from __future__ import annotations

from typing import Any


def default_device() -> str:
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe() for probe in probes if probe is not None)


def default_dtype(device: str) -> Any:
    """A policy's dtype: bf16 (or fp16) on accelerators, fp32 on cpu, where sampling should match the reference."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def feature_dtype(device: str = "cpu") -> Any:
    """A feature encoder's dtype: the fastest the hardware runs natively. bf16 on accelerators and on CPUs with
    native bf16, fp32 on the rest."""
    import torch

    if device.startswith("cpu"):
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    return default_dtype(device)
