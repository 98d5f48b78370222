"""Threads hand their OpenMP workers back when they stop computing (`modeling/threads.py`): torch passes outside the
engine, callers handing the engine work, and the idle engine, so that whoever computes has workers that spin.

Each case runs in a fresh process with 2 torch threads (the suite's own processes run with one, which starts no
workers), and counts the process's threads: a thread that ran a parallel region keeps its worker until released.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")

ROOT = Path(__file__).resolve().parents[2]
PRELUDE = """
import json, os, sys, threading
import torch
torch.set_num_threads(2)
from darwin_chains.modeling import threads

def count():
    return len(os.listdir("/proc/self/task"))

def on_a_thread(work):
    # a long-lived thread (as an executor's), so that its workers outlive the work unless released
    done, stop, seen = threading.Event(), threading.Event(), {}
    def body():
        work()
        seen["after"] = count()
        done.set()
        stop.wait()
    thread = threading.Thread(target=body)
    thread.start()
    done.wait()
    stop.set()
    thread.join()
    return seen["after"]
"""


def run(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args], capture_output=True,
                         text=True, env=env, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_thread_that_borrowed_workers_gives_them_back():
    seen = run("""
        big = torch.randn(256, 256)
        base = count()
        def kept():
            big @ big
        def borrowed():
            with threads.borrowed_threads():
                big @ big
        print(json.dumps({"base": base, "kept": on_a_thread(kept), "borrowed": on_a_thread(borrowed),
                          "released": threads.release()}))
    """)
    assert seen["released"] is True  # torch's OpenMP runtime was found and answers
    assert seen["kept"] == seen["base"] + 2  # the thread itself and its worker
    assert seen["borrowed"] == seen["base"] + 1  # the thread alone


def test_a_reward_pass_on_a_long_lived_thread_leaves_no_workers_behind(tiny_reward_model):
    """The HF reward model here; the default reward's encoder, reader and embedder in test_preference_reward.py."""
    seen = run("""
        from darwin_chains import Prompt
        from darwin_chains.rewards.hf import HFRewardModel
        reward = HFRewardModel.from_pretrained(sys.argv[1])
        score = lambda: reward.score(Prompt.of("Name a colour."), ["Blue, like the sea. " * 20] * 4)
        score()  # here first: the tokenizer's own thread pool starts, and stays
        base = count()
        after = on_a_thread(score)
        print(json.dumps({"base": base, "after": after}))
    """, str(tiny_reward_model))
    assert seen["after"] == seen["base"] + 1


def test_handing_work_to_the_engine_releases_the_callers_own_workers_and_an_idle_engine_its_own(tiny_llama):
    """The user's own torch work on the main thread (a `generate`, say) leaves a worker there; the engine's call
    releases it before it waits, and the engine releases its own as soon as it has no rows."""
    seen = run("""
        import time
        from darwin_chains import HFPolicy, Prompt, Sampling
        from darwin_chains.policies import engine
        engine.IDLE_SECONDS = 0.2
        policy = HFPolicy.from_pretrained(sys.argv[1], device="cpu", batch_invariant=False)
        beams = policy.start([Prompt.of("Name a colour.")], 8)

        def decode():
            policy.extend(beams, 2, Sampling(temperature=0), seed=0)
            while policy.engine._thread is not None:  # idle, its thread ends and takes its workers along
                time.sleep(0.05)
            time.sleep(0.3)

        decode()
        base = count()
        big = torch.randn(256, 256)
        big @ big  # the main thread's own parallel work
        grown = count()
        decode()
        after = count()
        engine.IDLE_SECONDS = 60  # the engine's thread stays, idle
        policy.extend(beams, 2, Sampling(temperature=0), seed=0)
        time.sleep(0.3)
        print(json.dumps({"base": base, "grown": grown, "after": after, "idle": count()}))
    """, str(tiny_llama))
    assert seen["grown"] == seen["base"] + 1
    assert seen["after"] == seen["base"]
    assert seen["idle"] == seen["base"] + 1  # the idle engine's thread, without its worker
