"""The commit-and-machine record every benchmark result carries."""
from __future__ import annotations

import json
import subprocess

import torch

from darwin_chains.cli import record


def test_the_record_names_the_commit_and_the_cpu_it_ran_on():
    rec = record.machine_record()
    assert rec["commit"] is None or len(rec["commit"].removesuffix("-dirty")) == 40
    assert rec["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert rec["cpus"] >= 1 and rec["torch"] == torch.__version__ and rec["cpu"] and rec["python"]
    json.dumps(rec)  # goes into result files as it is


def test_a_package_outside_its_own_checkout_reports_no_commit(monkeypatch, tmp_path):
    """Installed inside some other repository, that repository's commit would say nothing about this code."""
    package = tmp_path / "site-packages" / "darwin_chains"
    package.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.setattr(record, "PACKAGE", package)
    assert record.git_commit() is None
