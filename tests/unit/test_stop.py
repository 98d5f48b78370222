"""Stop sequences end beams in the core, for every policy: the answer, the rewards and the stream exclude them."""
from __future__ import annotations

import pytest

from darwin_chains import ConfigError, Search, SearchConfig
from darwin_chains.cli import _parser, config_from_args
from darwin_chains.search.stream import Delta, Final
from darwin_chains.testing import FakePolicy, KeywordReward, ScriptedPolicy

INSTRUCTION = "tell me about the cat"


def same(instruction: str, n: int) -> list[str]:
    return [instruction] * n


def replacing(policy: ScriptedPolicy, reward=None, **knobs) -> Search:
    config = SearchConfig(method="sample-replace", mutants=3, keep_top=1, replacement_period=2, max_new_tokens=20,
                          stop=" STOP", **knobs)
    return Search(policy, reward or KeywordReward(), None, config)


# -- the knob -------------------------------------------------------------------------------------------------------


def test_the_knob_takes_one_text_or_several_and_refuses_bad_ones():
    assert SearchConfig().stop == ()
    assert SearchConfig(stop="END").stop == ("END",)
    assert SearchConfig().replace(stop_sequences=["a", "b"]).stop == ("a", "b")
    assert SearchConfig().replace(stop=None).stop == ()
    for bad, why in (([""], "must not be empty"), (["a", "b", "c", "d", "e"], "at most 4"), ([1], "list of texts")):
        with pytest.raises(ConfigError, match=why):
            SearchConfig(stop=bad)


def test_the_cli_flag_repeats():
    args = _parser().parse_args(["align", "hi", "--stop", "END", "--stop-sequences", "\n\n"])
    assert config_from_args(args).stop == ("END", "\n\n")
    assert config_from_args(_parser().parse_args(["align", "hi"])).stop == ()


# -- beams end at a stop sequence -----------------------------------------------------------------------------------


def test_a_beam_ends_before_its_stop_sequence_and_is_extended_no_more():
    policy = ScriptedPolicy([" one two STOP three four", " five six seven eight nine ten eleven"])
    search = Search(policy, KeywordReward(["one"]), None,
                    SearchConfig(method="best-of-n", mutants=2, max_new_tokens=20, stop=("STOP", "eleven")))
    result = search.run(INSTRUCTION)
    assert result.trace.cycles[0].responses == [" one two ", " five six seven eight nine ten "]
    assert result.answer == " one two " and result.reward > 0


def test_a_stop_sequence_split_across_periods_still_ends_the_beam():
    policy = ScriptedPolicy([[" cat", " ST", "OP", " tail", " tail"], " a b c d e", " x y z w v"])
    reward = KeywordReward()
    result = replacing(policy, reward).run(INSTRUCTION)
    assert result.answer == " cat"
    assert all("STOP" not in response for _, response in reward.seen)


def test_a_beam_finished_by_stop_is_never_replaced():
    policy = ScriptedPolicy([" a STOP b c d e f", " cat cat cat cat cat cat", " x y z w v u"])
    trace = replacing(policy).run(INSTRUCTION).trace
    first = trace.cycles[0].periods[0]
    assert first.finished[0] and first.replacements == [(2, 1)]
    assert trace.cycles[0].responses[0] == " a"
    assert ("adopt", INSTRUCTION, " a") not in policy.history


def test_a_beam_adopting_a_response_cut_at_stop_adopts_the_cut_text_and_is_finished():
    policy = ScriptedPolicy([" cat STOP x y z", " a b c d e f", " g h i j k l"])
    result = replacing(policy).run(INSTRUCTION)
    assert policy.calls("adopt") == [("adopt", INSTRUCTION, " cat")] * 2
    assert result.trace.cycles[0].responses == [" cat"] * 3
    assert len(policy.calls("extend")) == 1, "every beam finished in the first period"


def test_seed_sample_and_look_ahead_probes_end_at_stop_too():
    reward = KeywordReward()
    search = Search(FakePolicy(stop=0.02), reward, same,
                    SearchConfig(mutants=4, keep_top=2, replacement_period=5, look_ahead=3, max_new_tokens=40,
                                 stop=("sat", "mat")))
    result = search.run(INSTRUCTION)
    assert result.trace.seed_sample is not None and result.trace.look_ahead_tokens > 0
    scored = [response for _, response in reward.seen]
    assert any(response.endswith(" ") for response in scored), "some beam was cut"
    assert not any("sat" in r or "mat" in r for r in scored + [result.answer, result.trace.seed_sample.response])


def test_a_stop_sequence_that_never_occurs_changes_nothing():
    def trace(**knobs):
        search = Search(FakePolicy(stop=0.03), KeywordReward(), same,
                        SearchConfig(mutants=4, keep_top=2, replacement_period=5, look_ahead=2, max_new_tokens=30,
                                     mutation_cycles=2, **knobs))
        data = search.run(INSTRUCTION).trace.to_dict()
        return {k: v for k, v in data.items() if k not in ("config", "seconds")} | {
            "cycles": [{**c, "seconds": 0, "periods": [{**p, "seconds": 0} for p in c["periods"]]}
                       for c in data["cycles"]]}

    assert trace() == trace(stop=("never",))


# -- streaming ------------------------------------------------------------------------------------------------------


def test_settled_text_never_holds_the_start_of_a_stop_sequence():
    script = [" hello", " there", " ST", "OP", " more"]
    settled: list[str] = []
    search = Search(ScriptedPolicy([script, script]), KeywordReward(), None,
                    SearchConfig(method="sample-replace", mutants=2, keep_top=1, replacement_period=3,
                                 max_new_tokens=20, stop=" STOP"))
    result = search.run(INSTRUCTION, on_event=lambda kind, data: settled.append(data["text"])
                        if kind == "settled" else None)
    assert result.answer == " hello there" and settled, "text settled while the beams decoded"
    assert all(result.answer.startswith(text) for text in settled)


def test_stream_deltas_add_up_to_the_answer_cut_at_the_configs_stop():
    policy = ScriptedPolicy([[" cat", " cat", " ST", "OP", " x"], " a b c d e", " f g h i j"])
    events = list(replacing(policy).stream(INSTRUCTION))
    final = events[-1]
    assert isinstance(final, Final) and final.result.answer == " cat cat"
    deltas = "".join(e.text for e in events if isinstance(e, Delta))
    assert deltas + final.delta == " cat cat"


# -- a real local policy --------------------------------------------------------------------------------------------


def test_the_local_policy_ends_at_a_stop_sequence_from_its_own_output(tiny_policy):
    config = SearchConfig().replace(method="sample", mutants=1, max_new_tokens=16, seed=3, temperature=1.0, top_p=1.0)
    search = Search(tiny_policy, KeywordReward(), None, config)
    full = search.run(INSTRUCTION).answer
    assert len(full) > 8, "the tiny model wrote some text"
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    result = search.run(INSTRUCTION, stop=stop)
    assert result.answer == full[: full.find(stop)] and stop not in result.answer
    assert result.trace.cycles[0].responses == [result.answer]
