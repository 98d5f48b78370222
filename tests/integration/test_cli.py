"""`darwin-chains align` on the embedded SmolLM2, run as a user runs it: a subprocess."""
from __future__ import annotations

import json

from tests.unit.test_cli import run


def test_align_json_on_the_embedded_model_reading_stdin():
    out = run("align", "-", "--max-new-tokens", "24", "--replacement-period", "8",
              "--mutants", "3", "--keep-top", "1", "--json", "--seed", "1", stdin="Name three primary colours.")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"answer", "reward", "trace"} and data["answer"].strip()
    trace = data["trace"]
    for key in ("seconds", "tokens_generated", "reward_calls", "cycles", "seed_sample"):
        assert key in trace
    cycle = trace["cycles"][0]
    assert len(cycle["instructions"]) == 3 and cycle["periods"] and cycle["archive_before"] and cycle["archive_after"]
    assert all(len(p["rewards"]) == 3 for p in cycle["periods"])
    assert trace["tokens_generated"] > 0 and trace["reward_calls"] > 0
    assert data["reward"] == max([trace["seed_sample"]["reward"], *cycle["final_rewards"]])

