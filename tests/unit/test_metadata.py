"""`SearchResult.metadata()`: the one view of a result that LangChain, LlamaIndex and `serve` show."""
from __future__ import annotations

import json

from darwin_chains import Search, SearchConfig
from darwin_chains.testing import FakePolicy, KeywordReward


def test_metadata_holds_the_reward_the_trace_summary_and_every_token_spent():
    result = Search(FakePolicy(), KeywordReward(), lambda instruction, n: [instruction] * n,
                    SearchConfig(mutants=3, keep_top=1, replacement_period=4, max_new_tokens=12)).run("say cat")
    meta = result.metadata()
    trace = result.trace
    assert (meta["reward"], meta["finished"], meta["finish_reason"]) == (result.reward, result.finished,
                                                                        result.finish_reason)
    assert meta["trace"] == trace.summary() and meta["trace"]["answer_source"] == trace.answer_source
    assert (meta["policy_requests"], meta["policy_retries"]) == (trace.policy_requests, 0) and trace.policy_requests
    assert meta["notes"] == trace.notes and meta["notes"] is not trace.notes
    assert meta["usage"] == {"input_tokens": trace.tokens_encoded, "output_tokens": trace.tokens_generated,
                             "total_tokens": trace.tokens_encoded + trace.tokens_generated}
    assert meta["usage"]["output_tokens"] >= 3 * 12  # every beam's tokens, not only the answer's
    assert json.loads(json.dumps(meta)) == meta
