"""The benchmark harness: every method on every prompt, resumable output, summaries and plots."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darwin_chains import ConfigError, InputError, SearchConfig
from darwin_chains.cli.bench import METHODS, Bench, load_prompts, markdown, read_rows, showcase, summarize
from darwin_chains.testing import FakePolicy, KeywordReward

#: The project's shared prompt files, beside the checkout (the package itself has no default for them).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def cat_suffix_mutator(instruction, n):
    return [f"{instruction} cat{i}" for i in range(n)]


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": i, "instruction": f"tell me about cat {i}", "reference": "the cat sat on the mat"}
            for i in range(3)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def make_bench(tmp_path, **kw):
    judges = {"keyword": KeywordReward(("mat",))}
    return Bench(FakePolicy(stop=0.05), KeywordReward(), cat_suffix_mutator, judges, tmp_path / "out.jsonl",
                 base=SearchConfig(max_new_tokens=20, replacement_period=5), **kw)


def test_every_method_answers_every_prompt_with_costs_and_judges(tmp_path, prompt_file):
    bench = make_bench(tmp_path)
    prompts = load_prompts([str(prompt_file)])
    written = asyncio.run(bench.run(prompts, concurrency=2))
    rows = read_rows(bench.out)
    methods = [m for m in METHODS if m != "darwin-3"] + ["darwin-1", "darwin-2", "darwin-3"]
    assert written == len(rows) == len(prompts) * len(methods)
    assert {(r["prompt_id"], r["method"]) for r in rows} == {(p.id, m) for p in prompts for m in methods}
    for r in rows:
        assert set(r["judges"]) == {"keyword"} and r["tokens_generated"] > 0 and r["seconds"] >= 0
    by = {(r["prompt_id"], r["method"]): r for r in rows}
    for p in prompts:  # more cycles never lower the reward and always cost more
        rewards = [by[(p.id, f"darwin-{c}")]["reward"] for c in (1, 2, 3)]
        tokens = [by[(p.id, f"darwin-{c}")]["tokens_generated"] for c in (1, 2, 3)]
        assert rewards == sorted(rewards) and tokens == sorted(tokens) and tokens[0] < tokens[2]
        assert by[(p.id, "best-of-15")]["tokens_generated"] > by[(p.id, "best-of-5")]["tokens_generated"]
    assert len(read_rows(bench.traces)) == len(prompts)  # one Darwin trace per prompt, for the plots


def test_rerun_skips_finished_prompts_and_recovers_a_torn_line(tmp_path, prompt_file):
    bench = make_bench(tmp_path, methods=["sample", "best-of-5"])
    prompts = load_prompts([str(prompt_file)])
    asyncio.run(bench.run(prompts[:2]))  # "interrupted" after two prompts
    first = bench.out.read_text()
    assert asyncio.run(bench.run(prompts[:2])) == 0 and bench.out.read_text() == first
    # A crash mid-write leaves a torn last line: that row runs again, nothing else does.
    bench.out.write_text(first[: first.rstrip("\n").rfind("\n") + 1] + '{"prompt_id": "pro')
    assert asyncio.run(bench.run(prompts)) == 1 + 2
    rows = read_rows(bench.out)
    assert len(rows) == 6 and len({(r["prompt_id"], r["method"]) for r in rows}) == 6
    assert bench.out.read_text().count("\n") == 7  # six rows and the torn line, no blank lines


def test_settings_and_commit_are_recorded_and_a_rerun_must_match_them(tmp_path, prompt_file):
    prompts = load_prompts([str(prompt_file)])
    bench = make_bench(tmp_path, methods=["sample"])
    asyncio.run(bench.run(prompts[:1]))
    saved = json.loads(bench.settings_file.read_text())
    assert saved["config"]["max_new_tokens"] == 20 and saved["methods"] == {"sample": {"method": "sample"}}
    assert saved["policy"] == "fake" and saved["judges"] == ["keyword"]
    assert saved["commit"] is None or len(saved["commit"].removesuffix("-dirty")) == 40
    assert saved["machine"]["cpus"] >= 1 and saved["machine"]["torch"]
    # Resuming with another method is fine; resuming with another search setting would mix two setups.
    assert asyncio.run(make_bench(tmp_path, methods=["best-of-5"]).run(prompts[:1])) == 1
    changed = Bench(FakePolicy(stop=0.05), KeywordReward(), cat_suffix_mutator, {}, bench.out,
                    methods=["sample"], base=SearchConfig(max_new_tokens=30, replacement_period=5))
    with pytest.raises(ConfigError, match="different config"):
        asyncio.run(changed.run(prompts))
    assert len(read_rows(bench.out)) == 2


def test_summary_pairs_methods_against_best_of_5(tmp_path, prompt_file):
    bench = make_bench(tmp_path, methods=["sample", "best-of-5", "best-of-10"])
    asyncio.run(bench.run(load_prompts([str(prompt_file)])))
    summary = summarize(read_rows(bench.out))
    assert list(summary) == ["sample", "best-of-5", "best-of-10"]
    assert 0 <= summary["sample"]["reward_win_rate_vs_best-of-5"] <= 1
    assert summary["best-of-10"]["reward"] >= summary["sample"]["reward"]
    assert "judge:keyword:win_rate_vs_best-of-5" in summary["best-of-10"]
    table = markdown(summary)
    assert table.count("\n") == 2 + len(summary) - 1 and "best-of-10" in table


def test_bad_prompt_files_are_clear(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_prompts([str(tmp_path / "missing.jsonl")])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no instruction key"}\n')
    with pytest.raises(InputError, match="row 1 has no instruction"):
        load_prompts([str(bad)])


def test_shared_prompt_sets_load(monkeypatch):
    prompts = load_prompts(["mt-bench:3", "alpaca:2"], SHARED_DATA)
    assert [p.source for p in prompts] == ["mt-bench"] * 3 + ["alpaca"] * 2
    assert prompts[3].reference and prompts[0].instruction
    monkeypatch.setenv("DARWIN_CHAINS_DATA", str(SHARED_DATA))
    assert load_prompts(["alpaca:2"]) == prompts[3:]


def test_shared_prompt_sets_need_a_data_folder(monkeypatch, tmp_path):
    """The installed package reads no path it was not given: no guess at where the shared data lives."""
    monkeypatch.delenv("DARWIN_CHAINS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--data-dir FOLDER.*DARWIN_CHAINS_DATA"):
        load_prompts(["mt-bench:3"])


def test_plots_are_drawn_from_results(tmp_path, prompt_file):
    from darwin_chains.cli import plots

    bench = make_bench(tmp_path)
    asyncio.run(bench.run(load_prompts([str(prompt_file)])))
    summary = summarize(read_rows(bench.out))
    for path in (plots.reward_vs_tokens(summary, tmp_path / "a.png"),
                 plots.judge_vs_reward(summary, "keyword", tmp_path / "b.png"),
                 plots.darwin_search(read_rows(bench.traces)[0]["trace"], tmp_path / "c.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_plotted_search_is_one_a_mutant_won_after_replacements():
    def trace(winner, replacements):
        period = {"replacements": [[1, 0]] * replacements}
        return {"trace": {"prompt": {"request": "q"}, "answer_source": f"cycle 0 slot {winner}",
                          "cycles": [{"instructions": ["q", "q + be brief"], "periods": [period]}]}}

    plain, busy, telling = trace(0, 0), trace(0, 3), trace(1, 1)
    assert showcase([plain, busy, telling]) is telling
    assert showcase([plain, busy]) is busy


def _ctrl_c_as_in_a_terminal() -> None:
    """A child inherits its parent's signal handlers and mask, which a long test session may have changed."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_loses_no_finished_row_and_a_rerun_completes(tmp_path, prompt_file, tiny_llama, tiny_reward_model):
    """SIGINT to a real `darwin-chains bench` process on a real (tiny) model, mid-run."""
    out = tmp_path / "bench.jsonl"
    prompts = tmp_path / "many.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": i, "instruction": f"tell me about cat {i}"}) for i in range(10)))
    rm = f"hf:{tiny_reward_model}"
    args = [sys.executable, "-m", "darwin_chains.cli", "bench", "--prompts", str(prompts), "--policy", str(tiny_llama),
            "--reward", rm, "--judge", rm, "--methods", "sample", "best-of-5", "--max-new-tokens", "24",
            "--out", str(out), "--progress", "off"]
    inherited = f"handler {signal.getsignal(signal.SIGINT)}, blocked {signal.pthread_sigmask(signal.SIG_BLOCK, [])}"
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 300
    while (not out.exists() or out.read_text().count("\n") < 2) and process.poll() is None:
        assert time.monotonic() < deadline, "no rows written"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)  # 18 rows to go: seconds of work, far longer than a poll
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, inherited
    finished = read_rows(out)
    assert 2 <= len(finished) < 20 and all(line.endswith("}") for line in out.read_text().splitlines())
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert len(rows) == len({(r["prompt_id"], r["method"]) for r in rows}) == 20
    assert rows[: len(finished)] == finished  # the interrupted run's rows stand, untouched
