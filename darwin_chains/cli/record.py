"""What a measured figure came from: the code's commit and the machine it ran on.

Every benchmark result carries this record, so a figure can be traced to its code and compared only with figures
from like hardware (CPUs differ: the dtype that runs fast on one is slow on another).
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent.parent
#: Environment variables that cap torch's, oneDNN's and MKL's kernels below the CPU's own instruction set.
KERNEL_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def git_commit() -> str | None:
    """The commit of the darwin-chains checkout this package runs from, `-dirty` with uncommitted changes; None
    when the package is installed (not at the top of a git checkout) or git is missing."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != PACKAGE.parent:
            return None  # installed inside some other repository: its commit says nothing about this code
        sha, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's marketing name where the OS tells it, else whatever platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Library versions, CPU, cores, torch threads, the CPU capability torch dispatches to (AVX2, AVX512, ...) and
    how the CPU runs bf16 (AMX, AVX512-BF16 or emulated: one capability, three kinds of numbers), the dtypes the
    library picks here, and the GPU when there is one."""
    import torch
    import transformers

    from .. import __version__
    from ..devices import cpu_bf16, default_device, default_dtype, feature_dtype_name

    return {"darwin_chains": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu": cpu_model(), "cpus": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_bf16": cpu_bf16(),
            "torch_threads": torch.get_num_threads(),
            "policy_dtype": str(default_dtype(default_device())).removeprefix("torch."),
            "feature_dtype": feature_dtype_name(),
            "kernel_caps": {k: os.environ[k] for k in KERNEL_CAPS if os.environ.get(k)},
            "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def machine_name(record: dict[str, Any]) -> str:
    """A result file's name for the machine: its CPU capability, how it runs bf16, "-capped" under kernel caps
    (avx512-avx512_bf16, avx2, avx2-capped, ...)."""
    name = "-".join(filter(None, [record["cpu_capability"].lower(), record.get("cpu_bf16")]))
    return name + ("-capped" if record.get("kernel_caps") else "")


def machine_record() -> dict[str, Any]:
    """The commit and the machine in one dict, for a result file's metadata."""
    return {"commit": git_commit(), **machine()}


__all__ = ["KERNEL_CAPS", "git_commit", "cpu_model", "machine", "machine_name", "machine_record"]
