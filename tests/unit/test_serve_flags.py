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


def test_connection_flags_default_to_bounded_connections_and_an_access_log():
    args = _parser().parse_args(["serve"])
    assert (args.timeout_keep_alive, args.timeout_headers, args.max_connections) == (5.0, 10.0, 256)
    assert args.access_log and args.max_body_seconds == 30.0
    args = _parser().parse_args(["serve", "--timeout-keep-alive", "2", "--timeout-headers", "0.5",
                                 "--max-connections", "10", "--no-access-log", "--max-body-seconds", "4"])
    assert (args.timeout_keep_alive, args.timeout_headers, args.max_connections, args.access_log,
            args.max_body_seconds) == (2.0, 0.5, 10, False, 4.0)


@pytest.mark.parametrize("flag, value", [("--timeout-keep-alive", "0"), ("--timeout-headers", "-1"),
                                         ("--timeout-headers", "nan"), ("--timeout-headers", "inf"),
                                         ("--max-connections", "0")])
def test_bad_connection_flags_are_refused(capsys, flag, value):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(["serve", flag, value])
    assert exit.value.code == 2 and flag in capsys.readouterr().err


def test_serve_passes_the_connection_flags_on(monkeypatch):
    from darwin_chains import defaults
    from darwin_chains.cli import main, serve
    from darwin_chains.testing import FakePolicy, KeywordReward

    given = {}
    monkeypatch.setattr(defaults, "policy", lambda spec=None: FakePolicy())
    monkeypatch.setattr(defaults, "reward", lambda spec=None, policy=None: KeywordReward(["cat"]))
    monkeypatch.setattr(serve, "run", lambda search, **options: given.update(options))
    assert main(["serve", "--timeout-headers", "3", "--max-connections", "7", "--no-access-log"]) == 0
    assert (given["timeout_headers"], given["max_connections"], given["access_log"]) == (3.0, 7, False)
    assert given["timeout_keep_alive"] == 5.0 and given["limits"].max_body_seconds == 30.0
