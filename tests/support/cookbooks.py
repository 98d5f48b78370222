"""The cookbook scripts as modules, so tests can exercise their parts in-process (importing one runs nothing)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

COOKBOOK = Path(__file__).resolve().parents[2] / "cookbook"


def run_cookbook(*args: str) -> str:
    """Run a cookbook script as a user does, from the repository root, offline and with the default policy."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("DARWIN_CHAINS_POLICY", None)
    done = subprocess.run([sys.executable, *args], cwd=COOKBOOK.parent, env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def load_cookbook(name: str) -> Any:
    """Import `cookbook/<name>.py`; its folder goes on sys.path, as when the script runs, for its sibling imports."""
    if str(COOKBOOK) not in sys.path:
        sys.path.insert(0, str(COOKBOOK))
    module_name = f"cookbook_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, COOKBOOK / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]
