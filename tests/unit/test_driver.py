"""The driver: every component call goes through it, failures name the component, and what a call found out
(notes, rejections, judge replies) reaches the trace of the search that made it, and no other."""
from __future__ import annotations

import asyncio
import threading

import pytest

from darwin_chains import LLMMutator, PolicyError, Prompt, Search, SearchConfig, Usage
from darwin_chains.rewards.judge import JudgeReward
from darwin_chains.testing import FakePolicy, KeywordReward, ScriptedPolicy

from tests.support.searches import suffix_mutator

INSTRUCTION = "tell me about the cat"
CONFIG = SearchConfig(max_new_tokens=30, replacement_period=10, seed=1)


class ThreadRecorder(FakePolicy):
    """Records the thread that every start and adopt ran on."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.threads: dict[str, set[int]] = {"start": set(), "adopt": set()}

    def start(self, prompts, max_new_tokens):
        self.threads["start"].add(threading.get_ident())
        return super().start(prompts, max_new_tokens)

    def adopt(self, beam, donor):
        self.threads["adopt"].add(threading.get_ident())
        return super().adopt(beam, donor)


def test_arun_starts_and_adopts_in_worker_threads():
    policy = ThreadRecorder(stop=0.0)

    async def main():
        result = await Search(policy, KeywordReward(), suffix_mutator, CONFIG).arun(INSTRUCTION)
        return result, threading.get_ident()

    result, loop_thread = asyncio.run(main())
    assert any(p.replacements for c in result.trace.cycles for p in c.periods)
    assert policy.threads["start"] and policy.threads["adopt"]
    assert loop_thread not in policy.threads["start"] | policy.threads["adopt"]


class Broken(FakePolicy):
    def __init__(self, where: str):
        super().__init__(stop=0.0, name="broken")
        self.where = where

    @property
    def supports_continuation(self) -> bool:
        if self.where == "probe":
            raise ConnectionError("server unreachable")
        return True

    @supports_continuation.setter
    def supports_continuation(self, value: bool) -> None:
        pass

    def adopt(self, beam, donor):
        if self.where == "adopt":
            raise RuntimeError("cache gone")
        return super().adopt(beam, donor)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_exception_in_start_is_a_policy_error_naming_the_policy(asynchronous):
    search = Search(ScriptedPolicy(name="script"), KeywordReward(), suffix_mutator, CONFIG)
    with pytest.raises(PolicyError, match="policy 'script' raised LookupError: ScriptedPolicy has no response"):
        asyncio.run(search.arun(INSTRUCTION)) if asynchronous else search.run(INSTRUCTION)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_exception_in_adopt_is_a_policy_error_with_the_partial_result(asynchronous):
    search = Search(Broken("adopt"), KeywordReward(), suffix_mutator, CONFIG)
    with pytest.raises(PolicyError, match="policy 'broken' raised RuntimeError: cache gone") as err:
        asyncio.run(search.arun(INSTRUCTION)) if asynchronous else search.run(INSTRUCTION)
    partial = err.value.partial
    assert partial is not None and partial.trace.reward_calls  # it had decoded and scored one period
    assert not partial.finished and partial.answer


def test_a_failing_capability_probe_is_a_policy_error():
    with pytest.raises(PolicyError, match="policy 'broken' raised ConnectionError: server unreachable"):
        Search(Broken("probe"), KeywordReward(), suffix_mutator, CONFIG).run(INSTRUCTION)


class Rewriter(FakePolicy):
    """Answers a mutation request with rewrites of the instruction it names, two of them unusable."""

    def extend(self, beams, n, sampling, seed):
        usage = super().extend(beams, n, sampling, seed)
        for b in beams:
            asked = b.prompt.request.rsplit("Instruction: ", 1)[1]
            b.response = f"1. {asked}, please\n2. Explain: {asked}\n3. {asked}, please\n4. ok"
            b.finished = True
        return usage


def test_a_mutators_rejections_reach_the_trace():
    mutator = LLMMutator(Rewriter(), max_new_tokens=8)
    trace = Search(FakePolicy(), KeywordReward(), mutator, CONFIG.replace(mutants=3, keep_top=2)).run(INSTRUCTION).trace
    assert trace.mutation_rejections == [(f"{INSTRUCTION}, please", "duplicate"), ("ok", "too short for a rewrite")]
    assert trace.cycles[0].instructions == [f"{INSTRUCTION}, please", f"Explain: {INSTRUCTION}", INSTRUCTION]
    assert not hasattr(mutator, "rejected")  # nothing per call is left on the shared mutator


class Noting(FakePolicy):
    """Returns a note naming the requests it was asked to extend, as a remote policy reports what it found."""

    def extend(self, beams, n, sampling, seed):
        usage = super().extend(beams, n, sampling, seed)
        usage.notes = sorted({f"extended {b.prompt.request}" for b in beams if not b.finished} | {"shared fact"})
        return usage


def test_notes_returned_by_a_policy_reach_only_that_searchs_trace():
    search = Search(Noting(stop=0.0), KeywordReward(), None, CONFIG.replace(method="best-of-n"))

    async def both():
        return await asyncio.gather(search.arun("about cats"), search.arun("about dogs"))

    cats, dogs = asyncio.run(both())
    assert cats.trace.notes == ["extended about cats", "shared fact"]
    assert dogs.trace.notes == ["extended about dogs", "shared fact"]


def test_usage_notes_merge_without_repeats():
    usage = Usage(notes=["a"])
    usage += Usage(output_tokens=2, notes=["a", "b"])
    assert usage.notes == ["a", "b"] and usage.output_tokens == 2


class Judge(FakePolicy):
    """A judge model that rates by response length, in words: "Score: N"."""

    def extend(self, beams, n, sampling, seed):
        for b in beams:
            response = b.prompt.request.split("Response: ")[1].split("\n\n")[0]
            b.response, b.finished, b.tokens = f"Score: {min(10, 1 + len(response.split()) // 3)}", True, 2
        return Usage(output_tokens=2 * len(beams), requests=len(beams))


def test_judge_replies_reach_the_trace_with_their_tokens():
    judge = JudgeReward(Judge())
    trace = Search(FakePolicy(stop=0.0), judge, None, CONFIG.replace(method="best-of-n", mutants=3)).run(
        INSTRUCTION).trace
    assert len(trace.reward_replies) == trace.reward_calls and trace.reward_calls >= 1
    assert all(reply.startswith("Score: ") for reply in trace.reward_replies)
    assert trace.reward_tokens == 2 * trace.reward_calls


class GrammarPerCall(ScriptedPolicy):
    """A policy that constrains to a JSON schema within one call only, as a server's structured outputs do."""

    supports_json_schema = True
    continues_json_schema = False


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.mark.parametrize("constrained", [True, False])
def test_a_schema_the_policy_constrains_per_call_only_decodes_whole_beams(constrained):
    """A server restarts its grammar with every request: continuing a constrained beam would start a second JSON
    document, so such a search decodes each beam whole and says why; unconstrained, the same policy continues."""
    policy = GrammarPerCall(default='{"a": 1}')
    prompt = Prompt.of(INSTRUCTION).constrained(SCHEMA if constrained else None)
    result = Search(policy, KeywordReward(), suffix_mutator, CONFIG).run(prompt)
    extends = [h for h in policy.history if h[0] == "extend"]
    assert result.trace.granularity == ("response" if constrained else "token")
    assert extends[0][2] == (CONFIG.max_new_tokens if constrained else CONFIG.replacement_period)
    notes = " ".join(result.trace.notes)
    assert ("restarts its grammar with every request" in notes) is constrained


def test_openai_requests_carry_a_constrained_prompts_schema_as_response_format():
    """In every mode the schema travels as OpenAI's `response_format` (vLLM reads it on /v1/completions too)."""
    from darwin_chains import Beam, Sampling
    from darwin_chains.policies.openai.transport import Job, Tokens, request

    class Endpoint:
        completions = object()
        chat = type("Chat", (), {"completions": object()})()

    schema = {**SCHEMA, "title": "Count it!"}
    for mode, state in (("tokens", Tokens([1, 2])), ("completions", "<prompt>"), ("chat", None)):
        plain, constrained = (Beam(Prompt.of("x").constrained(s), state=state) for s in (None, schema))
        _, kwargs = request(Endpoint, "m", mode, Job([plain], [0]), 8, Sampling(), extra_body={}, send_seed=False)
        assert "response_format" not in kwargs.get("extra_body", {})
        _, kwargs = request(Endpoint, "m", mode, Job([constrained], [0]), 8, Sampling(), extra_body={},
                            send_seed=False)
        assert kwargs["extra_body"]["response_format"] == {
            "type": "json_schema", "json_schema": {"name": "Count_it_", "schema": schema}}
