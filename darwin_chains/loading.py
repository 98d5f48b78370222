"""Models load one at a time, and each shared model once per process, whichever thread or task asks first.

transformers' `from_pretrained` sets torch's process-wide default dtype while it builds a model and restores the
old one afterwards. Two loads in two threads interleave those calls, and a bf16 load beside an fp32 one can leave
the whole process in bf16; transformers' lazy imports race the same way ("cannot import name 'AutoModel'"). So
every load in the library runs under `LOCK`, and a shared model (`@load_once`) is built by the first caller while
the others wait for it. Code that runs beside a load never reads the default dtype: it names its dtypes.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Held for the whole of any model load (imports included). Reentrant: a load may load what it builds on.
LOCK = threading.RLock()


def load_once(load: Callable[..., T]) -> Callable[..., T]:
    """`load(*args)` runs once per distinct args, under `LOCK`; later calls return its result without waiting for
    other loads. A load that raises is not cached: the next call tries again."""
    loaded: dict[Hashable, T] = {}

    @functools.wraps(load)
    def cached(*args: Hashable) -> T:
        try:
            return loaded[args]
        except KeyError:
            pass
        with LOCK:
            if args not in loaded:
                loaded[args] = load(*args)
            return loaded[args]

    cached.cache_clear = loaded.clear  # type: ignore[attr-defined]
    return cached


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers without its warnings and progress bars: a reward loading mid-search should not draw a bar
    over the search's own, nor report the layers it drops on purpose as unexpected weights."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


__all__ = ["LOCK", "load_once", "quiet_transformers"]
