"""Threads hand their OpenMP workers back when they stop computing, so that whoever computes has workers that spin.

PyTorch's CPU kernels run on OpenMP. libgomp keeps the worker threads of every thread that ever ran a parallel
region until that thread exits, and once a process holds more of them than there are CPUs, all its workers stop
spinning between regions and sleep instead, so each region pays for waking them. A decoding step runs some 200
regions: measured on 2 cores, after one reward pass on the main thread, the engine's steps took twice as long
(53 ms to 108 ms for 5 rows) for the rest of the process, and any short region four times as long.

So the library's own passes outside the engine (the reward's encoder, the reader, the embedder) run inside
`borrowed_threads()`, which gives the calling thread's workers back on the way out (OpenMP 5's
`omp_pause_resource_all`); a thread that hands the engine work releases its own before it waits (the user's
`generate` on the main thread, say), and the engine releases its own whenever it runs out of rows (while a period's
beams are scored). Whoever computes holds the CPUs' worth of workers, and they spin. Where the runtime lacks the
call, this does nothing.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
from contextlib import contextmanager
from typing import Any, Iterator

_PAUSE_SOFT = 1  # omp_pause_soft: the threads go; the runtime starts new ones when they are needed again
_RUNTIMES = ("libgomp", "libiomp", "libomp")


@contextmanager
def borrowed_threads() -> Iterator[None]:
    """Run a torch pass; afterwards, the calling thread's OpenMP workers are released."""
    try:
        yield
    finally:
        release()


def release() -> bool:
    """Give back the calling thread's OpenMP workers; False where that is not possible (no runtime found, or
    inside a parallel region)."""
    pause = _pause()
    return pause is not None and pause(_PAUSE_SOFT) == 0


@functools.cache
def _pause() -> Any:
    """`omp_pause_resource_all` of the OpenMP runtime torch loaded, or None."""
    for path in _loaded_runtimes():
        try:
            function = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            continue
        function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
        return function
    return None


def _loaded_runtimes() -> list[str]:
    """Paths of OpenMP runtimes in this process: from the memory map on Linux, else next to torch's libraries."""
    found: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:  # address, permissions, offset, device, inode, then the path if any
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) == 6 else ""
                if os.path.basename(path).startswith(_RUNTIMES) and path not in found:
                    found.append(path)
    except OSError:
        pass
    if not found:
        import torch

        for name in _RUNTIMES:
            found += sorted(glob.glob(os.path.join(os.path.dirname(torch.__file__), "lib", f"{name}*")))
    return found
