"""The OpenAI-policy cookbook runs end to end, as a user runs it: `openai_remote.py` against the session's real
`transformers serve` through `--base-url`, so that it does not start a second one."""
from __future__ import annotations

import re

from tests.support.cookbooks import run_cookbook


def test_openai_remote(served_smollm2):
    out = run_cookbook("cookbook/openai_remote.py", "--base-url", served_smollm2)
    assert "completions mode" in out and re.search(r"^A: \S", out, re.M)
    assert re.search(r"\d+ requests, 0 retries", out) and "judge scores: answer" in out
    assert "granularity response" in out and "422" in out
