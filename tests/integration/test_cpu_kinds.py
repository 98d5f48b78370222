"""The exactness tests again, with the kernels of every lower CPU kind the host can cap itself to.

A bitwise claim (the tests marked `cpu_kernels`) holds or fails by the kernels torch, oneDNN and MKL pick for the
host's instruction set, and the machines this suite runs on differ from session to session: AVX2 only, AVX-512 with
AVX512-BF16, and AVX-512 with AMX too. A host can cap those kernels below its own, so an AVX-512 host reruns the
tests as the AVX2 kind, and an AMX host as the AVX512-BF16 kind too: a change that breaks another kind fails on
whichever machine the suite lands on. No host can run above its own kind; an AVX2 host has none below it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from darwin_chains.devices import cpu_bf16

ROOT = Path(__file__).resolve().parents[2]
#: What caps the kernels to each kind: ATen's own vectorised kernels, oneDNN (bf16 and fp32 matmuls) and MKL.
KINDS = {
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "AVX512-BF16 without AMX": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
}


def lower_kinds() -> list[str]:
    """The kinds below this host's that its kernels can be capped to."""
    kinds = ["AVX2"] if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else []
    return kinds + (["AVX512-BF16 without AMX"] if cpu_bf16() == "amx" else [])


def marked_files() -> list[str]:
    """The test files with `cpu_kernels` tests (collecting only them saves the rest of the suite's imports)."""
    here = Path(__file__).resolve()
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if p != here and "mark.cpu_kernels" in p.read_text())


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_exactness_tests_pass_with_the_kernels_of_a_lower_cpu_kind(kind):
    if kind not in lower_kinds():
        pytest.skip(f"this host (CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16: {cpu_bf16()}) "
                    f"cannot cap its kernels to {kind}: it is that kind or below it, and runs its own kernels")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(KINDS[kind], OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    # fp32 only: the bf16 cases are bounds, not bitwise, and already run on every host
    # The child leaves by os._exit once pytest has reported: its interpreter's finalization has been seen to abort
    # ("terminate called without an active exception", SIGABRT) after every test passed, depending on what the
    # process happened to import; that is a teardown race of the child's native threads, not a kernel's result.
    args = ["-p", "no:cacheprovider", "-m", "cpu_kernels", "-k", "not bf16", *marked_files()]
    child = f"import os, sys, pytest; code = pytest.main({args!r}); sys.stdout.flush(); os._exit(int(code))"
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    if kind == "AVX2":
        assert "CPU capability AVX2," in done.stdout  # the header shows the cap took
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 10 and "failed" not in summary and "skipped" not in summary, summary
