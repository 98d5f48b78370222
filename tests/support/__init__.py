"""What the tests share, in one place: fakes and helpers that more than one test file uses, and the fast run's guard.

- `searches`: small search parts for fast tests (a suffix mutator, a slow fake policy, a trace without timings).
- `coalescing`: make concurrent calls meet in a Coalescer on purpose.
- `loop_watch`: check that work done for an event loop leaves it free.
- `cookbooks`: the cookbook scripts as modules, or run as a user runs them.
- `no_real_models`: a run that selects no integration test loads no real model (tests/conftest.py installs it).

Fixtures stay in the `conftest.py` of the folder whose tests use them; loopback server helpers for the integration
tests stay in tests/integration/servers.py, beside those tests.
"""
