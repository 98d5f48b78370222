"""The serve cookbook runs end to end, as a user runs it: `openai_serve_client.py` starts `darwin-chains serve`
and asks it with the `openai` client and ChatOpenAI."""
from __future__ import annotations

import re

from tests.support.cookbooks import run_cookbook


def test_openai_serve_client():
    out = run_cookbook("cookbook/openai_serve_client.py")
    assert "models: ['darwin:smollm2-135m-instruct']" in out and re.search(r"^A: \S", out, re.M)
    assert "bad parameter -> 400 unknown search parameter(s): mutantz" in out
    assert re.search(r"^ChatOpenAI: \S", out, re.M)
