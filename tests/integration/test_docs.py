"""The docs cannot drift from the code: every code block in README.md and docs/ runs here, and the site builds.

Python blocks run as they are: a page's blocks in order, in one namespace, as a reader pastes them one after the
other. Shell blocks run line by line: a `darwin-chains` line runs in-process through the CLI's `main` (the models
then load once for every page), a line listed in NOT_RUN is skipped, and any other line fails the test, so a new
command in the docs is either run or listed here. The blocks are kept cheap (a few dozen new tokens on the embedded
models, or the fakes of `darwin_chains.testing`): the whole file takes about a minute on one thread.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import httpx
import pytest

from .servers import free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

#: Shell lines the suite does not run, as the docs write them (without their comments), and why.
NOT_RUN = {
    # They install packages or set up an environment: what `make test` itself has done before the suite runs.
    "make demo",
    "make test",
    'pip install "darwin-chains[all]"',
    "darwin-chains setup",
    # They start a server that runs until it is stopped; the serving page's client runs against a served search.
    "darwin-chains serve --policy embedded --port 8000",
    # Long runs: the committed benchmark, and a bench against a server that is not here.
    "bash benchmarks/quality/run.sh",
    "darwin-chains bench --prompts my_prompts.jsonl --policy openai:MODEL@URL --concurrency 8 --out mine.jsonl "
    "--plots plots",
    # The README's vLLM lines: tests/integration/vllm/test_readme.py runs them against the session's vLLM.
    "make vllm",
    "VLLM_CPU_KVCACHE_SPACE=2 .vllm-venv/bin/python -m vllm.entrypoints.openai.api_server --port 8000 --model "
    '"$(.venv/bin/darwin-chains setup --model-dir)" --served-model-name smollm2 --no-enable-chunked-prefill &',
    "until curl -sf http://127.0.0.1:8000/health; do sleep 2; done",
    ".venv/bin/darwin-chains align --policy openai:smollm2@http://127.0.0.1:8000/v1 --seed 1 --mutants 3 "
    "--max-new-tokens 48 --json 'Give three tips for writing a clear email.'",
    # The suite and the docs build, which this file runs its own way.
    "make test-fast",
    "OMP_NUM_THREADS=1 .venv/bin/python -m pytest tests/unit",
    "mkdocs build --strict",
}

#: Where the serving page's client finds `darwin-chains serve`; the test serves a search there instead.
SERVER_URL = "http://127.0.0.1:8000"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line) of every fenced block on the page; an indented one (in a list item) would go unseen,
    so there must be none."""
    text = page.read_text()
    assert not re.search(r"^[ \t]+```", text, re.MULTILINE), f"{name(page)}: an indented code block; unindent it"
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2) for m in FENCE.finditer(text)]


def shell_lines(code: str) -> list[tuple[str, ...]]:
    """Each command of a shell block as its words, continuation lines joined, comments and blank lines left out."""
    commands = (shlex.split(line, comments=True) for line in code.replace("\\\n", " ").splitlines())
    return [tuple(words) for words in commands if words]


NOT_RUN_WORDS = {tuple(shlex.split(line)) for line in NOT_RUN}
RAN: set[tuple[str, ...]] = set()


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture(scope="module")
def served():
    """`darwin-chains serve`'s app in a real uvicorn server on a free port, over a fake policy: the client code on
    the serving page runs against it in milliseconds."""
    import uvicorn
    from darwin_chains import Search, SearchConfig, TemplateMutator
    from darwin_chains.cli.serve import create_app, lifecycle
    from darwin_chains.testing import FakePolicy, KeywordReward

    port = free_port()
    search = Search(FakePolicy(stop=0.05), KeywordReward(), TemplateMutator(), SearchConfig(mutants=3, keep_top=1))
    app = create_app(search)
    server = uvicorn.Server(lifecycle.config(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        pytest.fail("the served search did not come up within 20 s")
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_every_code_block_runs(page, request, monkeypatch, capsys):
    from darwin_chains.cli import main

    monkeypatch.delenv("DARWIN_CHAINS_POLICY", raising=False)  # the docs promise the embedded default
    scope = {"__name__": f"docs:{name(page)}"}
    for language, code, line in blocks(page):
        where = f"{name(page)}, the block at line {line}"
        if language == "python":
            if SERVER_URL in code:
                code = code.replace(SERVER_URL, request.getfixturevalue("served"))
            exec(compile(code, where, "exec"), scope)
        elif language in ("bash", "sh", "shell", "console"):
            for command in shell_lines(code):
                if command in NOT_RUN_WORDS or command in RAN:  # a line the README and a page share runs once
                    continue
                RAN.add(command)
                assert command[0] == "darwin-chains", (
                    f"{where}: `{shlex.join(command)}` is neither a darwin-chains command nor listed in NOT_RUN")
                status = main(list(command[1:]))
                assert status == 0, f"{where}: `{shlex.join(command)}` exited with {status}: {capsys.readouterr().err}"
        else:
            assert language == "text", f"{where}: a ```{language} block; use python, bash or (not run) text"


def test_not_run_lists_only_lines_the_docs_still_hold():
    held = {command for page in PAGES for language, code, _ in blocks(page)
            if language in ("bash", "sh", "shell", "console") for command in shell_lines(code)}
    stale = sorted(shlex.join(words) for words in NOT_RUN_WORDS - held)
    assert not stale, f"no longer in the docs, drop them from NOT_RUN: {stale}"


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub and mkdocs both make it for the headings used here."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = unicodedata.normalize("NFKD", re.sub(r"[`*]", "", text)).lower()
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", text).strip())


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*?)\s*$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", [*PAGES, ROOT / "cookbook" / "README.md"], ids=name)
def test_every_link_resolves(page):
    """Links between pages and out of docs/ into the repository (benchmark results, the cookbook): the file exists
    and, for a Markdown page, so does the heading the anchor names."""
    broken = []
    for match in LINK.finditer(FENCE.sub("", page.read_text())):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{name(page)}: " + "; ".join(broken)


def test_the_readme_stays_short():
    size = (ROOT / "README.md").stat().st_size
    assert size <= 12_000, f"README.md has {size} bytes; it holds the pitch and the quickstarts, the rest goes to docs/"


def test_the_site_builds_strictly(tmp_path):
    """Broken links between pages, a missing page in the nav, and docstrings the API pages cannot render all fail."""
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(ROOT / "mkdocs.yml"),
             "-d", str(tmp_path / "site")]
    out = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "core" / "index.html").exists()
