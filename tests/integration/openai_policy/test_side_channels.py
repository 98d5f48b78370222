"""Concurrent searches over one LLM mutator and one `OpenAIPolicy` keep their rejections and notes apart.

Both travel back in return values, so each search's trace holds what its own calls found, whatever the other
search did in between on the same shared components.
"""
from __future__ import annotations

import asyncio

import pytest

from darwin_chains import LLMMutator, Search, SearchConfig
from darwin_chains.policies.openai import OpenAIPolicy
from darwin_chains.testing import KeywordReward

from .scripted_server import ScriptedServer

CATS, DOGS = "Explain why cats purr.", "Explain why dogs bark."


@pytest.fixture
def server():
    server = ScriptedServer(delay=0.05)
    yield server
    server.close()


def test_concurrent_searches_keep_their_own_rejections_and_notes(server):
    policy = OpenAIPolicy.from_url("scripted", server.url)  # chat mode: the server refuses continuation
    search = Search(policy, KeywordReward(["purr"]), LLMMutator(policy), SearchConfig(mutants=2, keep_top=1,
                                                                                      max_new_tokens=16, seed=0))

    async def both():
        # Two beams per mutant share a prompt, so the cats search asks for n=2, which the server ignores.
        return await asyncio.gather(search.arun(CATS, beams_per_mutant=2, keep_top=2), search.arun(DOGS))

    cats, dogs = asyncio.run(both())
    for result, instruction in ((cats, CATS), (dogs, DOGS)):
        assert result.trace.mutation_rejections == [(f"{instruction}, please", "duplicate"),
                                                    (instruction.split()[-1], "too short for a rewrite")]
        assert result.trace.cycles[0].instructions[0] == f"{instruction}, please"
        assert any("continue_final_message" in note for note in result.trace.notes)  # a fact both searches met
    n_notes = [[note for note in r.trace.notes if "n=2" in note] for r in (cats, dogs)]
    assert len(n_notes[0]) == 1 and n_notes[1] == []  # only the search whose requests it concerned
    assert policy.notes[-1] == n_notes[0][0]


def test_darwin_align_abatch_keeps_each_answers_rejections_apart(server):
    from langchain_darwin import DarwinAlign

    policy = OpenAIPolicy.from_url("scripted", server.url)
    align = DarwinAlign(policy=policy, reward=KeywordReward(["purr"]), mutator=LLMMutator(policy), mutants=2,
                        keep_top=1, max_new_tokens=16, seed=0, include_trace=True)
    cats, dogs = asyncio.run(align.abatch([CATS, DOGS], config={"max_concurrency": 2}))
    for message, instruction in ((cats, CATS), (dogs, DOGS)):
        trace = message.response_metadata["darwin"]["trace"]
        assert [tuple(r) for r in trace["mutation_rejections"]] == [(f"{instruction}, please", "duplicate"),
                                                                    (instruction.split()[-1], "too short for a rewrite")]
        assert trace["prompt"]["request"] == instruction
