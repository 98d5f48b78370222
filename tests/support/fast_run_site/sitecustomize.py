"""Put on PYTHONPATH by tests/support/no_real_models.py in a fast run: a child Python (the CLI, a bench run) gets the
same guard as the test process. Loaded by path, so the child needs nothing else from the tests on its path."""
import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "no_real_models.py"
_spec = importlib.util.spec_from_file_location("_fast_run_guard", _path)
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.install(children=False)
