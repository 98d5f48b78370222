"""The serve command's load and lifecycle flags: defaults, and a bad value is one line naming the flag."""
from __future__ import annotations

import pytest

from darwin_chains.cli import _parser


def test_defaults_bound_the_work():
    args = _parser().parse_args(["serve"])
    assert (args.max_concurrent, args.max_queue, args.shutdown_timeout) == (8, 16, 30.0)
    args = _parser().parse_args(["serve", "--max-concurrent", "4", "--max-queue", "0", "--shutdown-timeout", "2.5"])
    assert (args.max_concurrent, args.max_queue, args.shutdown_timeout) == (4, 0, 2.5)


@pytest.mark.parametrize("flag, value", [("--max-concurrent", "0"), ("--max-queue", "-1"),
                                         ("--shutdown-timeout", "-3"), ("--max-queue", "many")])
def test_bad_values_are_refused(capsys, flag, value):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(["serve", flag, value])
    assert exit.value.code == 2 and flag in capsys.readouterr().err
