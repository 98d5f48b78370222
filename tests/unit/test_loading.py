"""Models load once and one at a time (`loading.py`), and the dtypes the library picks do not depend on the host."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from darwin_chains import devices
from darwin_chains.errors import ConfigError
from darwin_chains.loading import LOCK, load_once
from darwin_chains.rewards import PreferenceReward


def start_together(target, n: int) -> None:
    """`target(i)` in n threads released at once; any error is raised here."""
    barrier, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except Exception as exc:  # noqa: BLE001 - reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_a_shared_model_loads_once_whichever_thread_asks_first():
    calls, got = [], {}

    @load_once
    def load(name: str) -> object:
        calls.append(name)
        time.sleep(0.05)  # long enough for every other thread to arrive while it loads
        return object()

    start_together(lambda i: got.__setitem__(i, load("model")), 16)
    assert calls == ["model"] and len({id(v) for v in got.values()}) == 1
    assert load("other") is not got[0] and calls == ["model", "other"]


def test_a_failed_load_is_not_kept_and_the_next_call_tries_again():
    attempts = []

    @load_once
    def load() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return "model"

    with pytest.raises(OSError):
        load()
    assert load() == "model" and load() == "model" and len(attempts) == 2


def test_a_loaded_model_is_returned_without_waiting_for_another_load():
    load = load_once(lambda: "model")
    load()
    got = []
    with LOCK:  # another thread's long load holds the lock
        thread = threading.Thread(target=lambda: got.append(load()))
        thread.start()
        thread.join(5)
    assert got == ["model"]


def test_loads_in_two_dtypes_at_once_leave_the_default_dtype_alone(tiny_llama):
    """transformers sets torch's process-wide default dtype while it builds a model: interleaved, a bf16 load beside
    an fp32 one could leave the process in bf16. Under the one lock every model gets its dtype and the process
    keeps float32."""
    from darwin_chains import HFPolicy

    dtypes = [torch.bfloat16 if i % 2 else torch.float32 for i in range(8)]
    loaded = {}
    for _ in range(3):
        start_together(lambda i: loaded.__setitem__(i, HFPolicy.from_pretrained(tiny_llama, device="cpu",
                                                                                dtype=dtypes[i])), len(dtypes))
        assert torch.get_default_dtype() == torch.float32
        assert [loaded[i].model.dtype for i in range(len(dtypes))] == dtypes


def test_the_feature_dtype_is_fp32_on_every_cpu_unless_asked(monkeypatch):
    """The default does not follow the host: fp32 is the dtype in which features are exact on every CPU kind."""
    monkeypatch.delenv(devices.FEATURE_DTYPE_ENV, raising=False)
    for amx in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda amx=amx: amx, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda amx=amx: amx, raising=False)
        assert devices.cpu_bf16() == ("amx" if amx else None)
        assert devices.feature_dtype() == torch.float32 and PreferenceReward().dtype == "float32"
    monkeypatch.setenv(devices.FEATURE_DTYPE_ENV, "bf16")
    assert devices.feature_dtype() == torch.bfloat16 and PreferenceReward().dtype == "bfloat16"
    assert devices.feature_dtype("fp32") == devices.feature_dtype(torch.float32) == torch.float32


@pytest.mark.parametrize("how, name", [("dtype", "int8"), ("dtype", "float16"), ("env", "half")])
def test_an_unknown_feature_dtype_is_refused_before_anything_loads(monkeypatch, how, name):
    monkeypatch.setenv(devices.FEATURE_DTYPE_ENV, name if how == "env" else "fp32")
    with pytest.raises(ConfigError, match=f"{how if how == 'dtype' else devices.FEATURE_DTYPE_ENV} '{name}'.* fp32 "
                                          r"\(exact, the default\) or bf16"):
        PreferenceReward(dtype=name if how == "dtype" else None)


def test_an_encoder_and_a_dtype_together_are_refused():
    with pytest.raises(ConfigError, match="not both"):
        PreferenceReward(encoder=object(), dtype="bf16")
