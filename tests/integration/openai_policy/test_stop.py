"""Stop sequences on the OpenAI-compatible policy: the core ends its beams there, whatever the server sends."""
from __future__ import annotations

import pytest

from darwin_chains import Search, SearchConfig
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.search.stream import Delta, Final
from darwin_chains.testing import KeywordReward

from .scripted_server import ANSWER, ScriptedServer


@pytest.fixture
def server():
    server = ScriptedServer()
    yield server
    server.close()


def test_whole_responses_from_a_chat_server_end_before_the_stop_sequence(server):
    policy = OpenAIPolicy.from_url("scripted", server.url)  # chat mode: the server refuses continuation
    search = Search(policy, KeywordReward(["purr"]), None,
                    SearchConfig(method="best-of-n", mutants=2, max_new_tokens=16, stop=" when"))
    result = search.run("Why do cats purr?")
    assert ANSWER.startswith(result.answer + " when") and result.answer == "Cats purr"
    assert result.reward == 0.5  # scored on the cut answer: one keyword in two words
    events = list(search.stream("Why do cats purr?"))
    final = events[-1]
    assert isinstance(final, Final)
    assert "".join(e.text for e in events if isinstance(e, Delta)) + final.delta == "Cats purr"


def test_a_served_model_decoding_period_by_period_ends_at_a_stop_sequence(served_smollm2, smollm2_dir):
    policy = OpenAIPolicy.from_url(str(smollm2_dir), served_smollm2, tokenizer=smollm2_dir, max_context=2048)
    # Greedy: both beams, and both runs, write the same text.
    config = SearchConfig().replace(method="sample-replace", mutants=2, keep_top=1, replacement_period=4,
                                    max_new_tokens=24, temperature=0)
    search = Search(policy, KeywordReward(["email"]), None, config)
    full = search.run("Give one tip for writing a clear email.").answer
    words = full.split()
    assert len(words) > 6, "the model wrote a few words"
    stop = " " + words[len(words) // 2]
    assert stop in full
    result = search.run("Give one tip for writing a clear email.", stop=stop)
    assert result.answer == full[: full.find(stop)] and stop not in result.answer
    assert result.trace.granularity == "token"
