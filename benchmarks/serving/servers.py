"""vLLM servers on loopback, started the README's way: what the suite (tests/support/vllm.py) and the serving
benchmark share. vLLM runs from its own virtual environment, `.vllm-venv` (`make vllm`)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".vllm-venv" / "bin" / "python"

#: What a server on a shared 2-core machine runs with: one thread, no core binding, a 1 GiB KV cache, the engine
#: in the server's process (a third of the start-up time), and passive waiting when idle.
SERVER_ENV = {"OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_CPU_KVCACHE_SPACE": "1",
              "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1",
              "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
#: fp32 as the local engine runs here, a 1024-token window (start-up profiles a pass that long), no compile step,
#: and no chunked prefill: with it, a seeded request whose
#: prefill is split crashes the CPU worker ("CPU Generator does not use offset").
SERVER_FLAGS = ["--dtype", "float32", "--max-model-len", "1024", "--enforce-eager", "--no-enable-chunked-prefill"]


def command(model: Path, name: str, port: int, *extra: str) -> list[str]:
    """The README's launch line for a model directory, with the flags above."""
    return [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
            name, "--host", "127.0.0.1", "--port", str(port), *SERVER_FLAGS, *extra]


def launch(model: Path, name: str, port: int, log: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """A vLLM server in its own process group (so stopping it stops its children), logging to `log`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DARWIN_CHAINS_"))}
    environ.update(SERVER_ENV, **(env or {}))
    with open(log, "wb") as out:
        return subprocess.Popen(command(model, name, port, *extra), stdout=out, stderr=subprocess.STDOUT,
                                env=environ, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    """Until `url`/health answers 200; RuntimeError with the log's tail if the server exits or takes too long."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {process.returncode}: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"vLLM at {url} not ready after {seconds:g} s: {log.read_text(errors='replace')[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def metric(url: str, name: str) -> float:
    """A counter from the server's Prometheus /metrics, summed over its labels."""
    import httpx

    text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
