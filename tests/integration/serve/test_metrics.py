"""`GET /metrics` in Prometheus text format: the counters move with each search, and each app has its own."""
from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import chat
from .slow_server import slow_search


def scrape(server) -> dict[tuple[str, tuple], float]:
    reply = httpx.get(f"{server.base}/metrics", timeout=5)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def test_counters_move_with_a_search(serve):
    server = serve(slow_search(0.0, max_new_tokens=12))
    before = scrape(server)
    assert before[("darwin_searches_running", ())] == 0 and before[("darwin_searches_queued", ())] == 0
    assert before[("darwin_request_seconds_count", ())] == 0
    reply = httpx.post(f"{server.url}/chat/completions", json=chat(), timeout=10).json()
    bad = httpx.post(f"{server.url}/chat/completions", json=chat(darwin={"mutants": 0}), timeout=10)
    assert bad.status_code == 400
    after = scrape(server)
    assert after[("darwin_tokens_total", (("kind", "generated"),))] == reply["usage"]["completion_tokens"] > 0
    assert after[("darwin_tokens_total", (("kind", "encoded"),))] >= 0
    assert after[("darwin_reward_calls_total", ())] == reply["darwin"]["trace"]["reward_calls"] > 0
    assert after[("darwin_periods_total", ())] == reply["darwin"]["trace"]["periods"] > 0
    assert after[("darwin_searches_total", (("outcome", "done"),))] == 1
    assert after[("darwin_errors_total", (("status", "400"),))] == 1
    assert after[("darwin_request_seconds_count", ())] == 2
    assert after[("darwin_search_seconds_total", ())] > 0


def test_two_apps_in_one_process_keep_their_own_counts(serve):
    one, two = serve(slow_search(0.0, max_new_tokens=8)), serve(slow_search(0.0, max_new_tokens=8))
    assert httpx.post(f"{one.url}/chat/completions", json=chat(), timeout=10).status_code == 200
    assert scrape(one)[("darwin_searches_total", (("outcome", "done"),))] == 1
    assert ("darwin_searches_total", (("outcome", "done"),)) not in scrape(two)
