"""The README's "Darwin at scale" commands, as written, against the session's vLLM.

The session's server runs the README's launch line (tests/support/vllm.py adds only what a shared test machine
needs: one thread, a smaller KV cache, a free port, the engine in one process); the commands that talk to it run
exactly as written but for the port.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from tests.integration.test_docs import FENCE, shell_lines
from benchmarks.serving.servers import command

ROOT = Path(__file__).resolve().parents[3]


def readme_lines() -> list[tuple[str, ...]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Darwin at scale"):]
    section = section[: section.index("\n## ", 1)]
    (code,) = [m.group(2) for m in FENCE.finditer(section) if m.group(1) == "bash"]
    return shell_lines(code)


def test_the_readme_launch_line_is_what_the_suite_serves():
    (launch,) = [line for line in readme_lines() if "vllm.entrypoints.openai.api_server" in line]
    assert launch[0].startswith("VLLM_CPU_KVCACHE_SPACE=") and launch[1] == ".vllm-venv/bin/python"
    words = list(launch[2:-1])  # the command after the interpreter, without the trailing &
    suite = command(Path("MODEL"), "smollm2", 8000)[1:]
    flags = {w for w in words if w.startswith("--")}
    assert flags <= {w for w in suite if w.startswith("--")} | {"--port"}, flags
    assert "--no-enable-chunked-prefill" in flags and words[words.index("--served-model-name") + 1] == "smollm2"
    model = words[words.index("--model") + 1]
    assert model == "$(.venv/bin/darwin-chains setup --model-dir)"
    printed = subprocess.run(shlex.split(model[2:-1]), cwd=ROOT, capture_output=True, text=True, timeout=120)
    from darwin_chains.embedded import smollm2_dir

    assert printed.returncode == 0 and printed.stdout.strip() == str(smollm2_dir())


def test_the_readme_align_line_runs_a_seeded_search_in_tokens_mode(vllm_policy_url):
    (align,) = [line for line in readme_lines() if line[:2] == (".venv/bin/darwin-chains", "align")]
    here = re.sub(r"127\.0\.0\.1:8000", vllm_policy_url.removeprefix("http://").removesuffix("/v1"),
                  shlex.join(align))
    done = subprocess.run(shlex.split(here), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    trace = result["trace"]
    assert result["answer"].strip() and trace["granularity"] == "token" and trace["seed"] == 1
    assert any("tokens mode" in note and "exact tokens the reward scored" in note for note in trace["notes"])
    assert trace["tokens_generated"] > 48  # several beams, each decoded by the server
