"""Every knob of SearchConfig, under its name and each alias, reaches the search from every face.

The knobs are enumerated from the dataclass itself, so a field added to SearchConfig is checked here on every face
(the CLI, DarwinAlign, ChatDarwin, DarwinLLM and serve) without touching this file. Nothing loads a model: the
adapters resolve their components lazily and no search runs.
"""
from __future__ import annotations

import dataclasses

import pytest

from darwin_chains import ConfigError, Sampling, SearchConfig
from darwin_chains import config as config_module
from darwin_chains.cli import _parser, config_from_args, main
from darwin_chains.cli.serve import MAPPED, parse_request
from darwin_chains.config import Knob, knobs, resolve

KNOBS = knobs()
NAMES = [(k, name) for k in KNOBS for name in k.names]
FLAGS = [(k, flag) for k in KNOBS for flag in k.flags]


def other(knob: Knob):
    """A value that is not the default and that the default config accepts (derived, so a new knob gets one)."""
    if knob.choices:
        return next(c for c in knob.choices if c != knob.default)
    if knob.type is bool:
        return not knob.default
    if knob.many:
        return ("END", "\n\n")
    if knob.default is None:
        return knob.type(3) / 2 if knob.type is float else knob.type(3)
    return knob.default / 2 if knob.type is float else knob.default + 1


def ids(pairs):
    return [second for _, second in pairs]


# -- the knobs themselves -----------------------------------------------------------------------------------------


def test_every_field_is_a_knob_with_its_metadata():
    fields = [f.name for f in dataclasses.fields(SearchConfig)]
    flat = [n for f in fields for n in ([s.name for s in dataclasses.fields(Sampling)] if f == "sampling" else [f])]
    assert [k.name for k in KNOBS] == flat
    for knob in KNOBS:
        assert knob.doc and knob.flags[0] == "--" + knob.name.replace("_", "-")
        assert knob.of(SearchConfig()) == knob.default
    aliases = [name for k in KNOBS for name in k.names]
    assert len(aliases) == len(set(aliases)), "an alias names two knobs"
    assert {k.name: k.symbol for k in KNOBS if k.symbol} == {
        "mutants": "n", "beams_per_mutant": "nb", "replacement_period": "m", "keep_top": "k", "look_ahead": "l"}
    aliased = {a: k.name for k in KNOBS for a in k.aliases}
    assert aliased.items() >= {"max_tokens": "max_new_tokens", "timeout": "time_budget"}.items()


def test_a_field_without_knob_metadata_fails_loudly():
    @dataclasses.dataclass(frozen=True)
    class Extended(SearchConfig):
        forgotten: int = 1

    with pytest.raises(TypeError, match="forgotten has no knob metadata"):
        config_module._knobs_of(Extended)


@pytest.mark.parametrize("knob, name", NAMES, ids=ids(NAMES))
def test_replace_takes_every_name_and_alias(knob, name):
    assert knob.of(SearchConfig().replace(**{name: other(knob)})) == other(knob)


def test_an_unknown_or_repeated_name_is_a_config_error_with_the_close_ones():
    with pytest.raises(ConfigError, match=r"unknown search parameter\(s\): mutant \(did you mean mutants\?\)"):
        SearchConfig().replace(mutant=3)
    with pytest.raises(ConfigError, match="max_new_tokens is given twice"):
        resolve({"max_tokens": 3, "max_new_tokens": 4})


def test_validation_is_unchanged_by_the_metadata():
    with pytest.raises(ConfigError, match="keep_top"):
        SearchConfig(mutants=3, keep_top=3)
    with pytest.raises(ConfigError, match="top_p"):
        SearchConfig().replace(top_p=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        SearchConfig().mutants = 2  # type: ignore[misc]


def test_check_mutator_is_the_one_no_mutator_rule():
    SearchConfig(method="best-of-n").check_mutator(None)
    for none in (None, "none"):
        with pytest.raises(ConfigError, match="mutates instructions"):
            SearchConfig().check_mutator(none)


# -- the CLI --------------------------------------------------------------------------------------------------------


def _argv(flag: str, value) -> list[str]:
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, tuple):  # a repeatable flag
        return [part for item in value for part in (flag, item)]
    return [flag, str(value)]


@pytest.mark.parametrize("knob, flag", FLAGS, ids=ids(FLAGS))
def test_cli_flag_reaches_the_config(knob, flag):
    args = _parser().parse_args(["align", "hi", *_argv(flag, other(knob))])
    assert knob.of(config_from_args(args)) == other(knob)


def test_cli_defaults_are_the_config_defaults():
    assert config_from_args(_parser().parse_args(["align", "hi"])) == SearchConfig()


def test_cli_optional_knobs_take_none():
    args = _parser().parse_args(["align", "hi", "--seed", "none", "--time-budget", "5", "--timeout", "none"])
    assert (config_from_args(args).seed, config_from_args(args).time_budget) == (None, None)


def test_align_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["align", "--help"])
    text = capsys.readouterr().out
    for knob, flag in FLAGS:
        assert flag in text
        if knob.type is bool:
            assert "--no-" + flag[2:] in text


# -- LangChain ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["DarwinAlign", "ChatDarwin"])
def langchain_class(request):
    import langchain_darwin

    return getattr(langchain_darwin, request.param)


@pytest.mark.parametrize("knob, name", NAMES, ids=ids(NAMES))
def test_langchain_construction_takes_every_name(langchain_class, knob, name):
    runnable = langchain_class(**{name: other(knob)})
    assert getattr(runnable, knob.name) == other(knob)
    assert knob.of(runnable.search_config()) == other(knob)


@pytest.mark.parametrize("knob, name", NAMES, ids=ids(NAMES))
def test_langchain_per_call_takes_every_name(langchain_class, knob, name):
    runnable = langchain_class()
    overrides, _ = runnable.options({name: other(knob)})
    assert knob.of(runnable.search_config(**overrides)) == other(knob)
    assert knob.of(runnable.search_config()) == knob.default  # the instance keeps its own value


def test_langchain_refuses_a_misspelt_knob(langchain_class):
    with pytest.raises(ConfigError, match=r"mutant \(did you mean mutants"):  # darwin's error, not pydantic's
        langchain_class(mutant=3)
    with pytest.raises(ConfigError, match=r"include_trac \(did you mean include_trace"):  # its own fields too
        langchain_class(include_trac=True)
    with pytest.raises(ConfigError, match="did you mean mutants"):
        langchain_class().options({"mutant": 3})


# -- LlamaIndex -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def darwin_llm():
    from llama_index.llms.darwin import DarwinLLM

    return DarwinLLM


@pytest.mark.parametrize("knob, name", NAMES, ids=ids(NAMES))
def test_llama_index_construction_and_per_call_take_every_name(darwin_llm, knob, name):
    llm = darwin_llm(**{name: other(knob)})
    assert getattr(llm, knob.name) == other(knob) and knob.of(llm.search_config()) == other(knob)
    fresh = darwin_llm()
    overrides = fresh.overrides({name: other(knob), "formatted": True})  # LlamaIndex's own kwargs pass by
    assert knob.of(fresh.search_config(**overrides)) == other(knob)


def test_llama_index_refuses_a_misspelt_knob_but_not_its_own_kwargs(darwin_llm):
    with pytest.raises(ConfigError, match="did you mean mutants"):
        darwin_llm(mutant=3)
    with pytest.raises(ConfigError, match="did you mean mutants"):
        darwin_llm().overrides({"mutant": 3})
    assert darwin_llm().overrides({"formatted": True}) == {}
    with pytest.raises(ConfigError, match="unknown search parameter"):  # not close to any knob, still refused
        darwin_llm().overrides({"not_a_search_field": 1})
    assert darwin_llm(system_prompt="Be brief.").system_prompt == "Be brief."


# -- serve ----------------------------------------------------------------------------------------------------------


def _request(**fields) -> dict:
    return {"model": "darwin", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.mark.parametrize("knob, name", NAMES, ids=ids(NAMES))
def test_serve_darwin_object_takes_every_name(knob, name):
    _, overrides, _ = parse_request(_request(darwin={name: other(knob)}), SearchConfig())
    assert knob.of(SearchConfig().replace(**overrides)) == other(knob)


@pytest.mark.parametrize("field", sorted(MAPPED))
def test_serve_openai_fields_keep_mapping(field):
    knob = next(k for k in KNOBS if k.name == MAPPED[field])
    _, overrides, _ = parse_request(_request(**{field: other(knob)}), SearchConfig())
    assert knob.of(SearchConfig().replace(**overrides)) == other(knob)


def test_serve_refuses_a_misspelt_knob():
    with pytest.raises(ConfigError, match="did you mean mutants"):
        parse_request(_request(darwin={"mutant": 3}), SearchConfig())


# -- every face alike -----------------------------------------------------------------------------------------------


def test_a_misspelt_setting_is_the_same_config_error_naming_mutants_on_every_face(capsys):
    from langchain_darwin import ChatDarwin, DarwinAlign
    from llama_index.llms.darwin import DarwinLLM

    for make in (SearchConfig, DarwinAlign, ChatDarwin, DarwinLLM,
                 lambda **kw: parse_request(_request(darwin=kw), SearchConfig())):
        with pytest.raises(ConfigError, match=r"^unknown search parameter\(s\): mutant \(did you mean mutants"):
            make(mutant=3)
    with pytest.raises(SystemExit) as exited:
        main(["align", "--mutnts", "3", "hi"])
    assert exited.value.code == 2 and "--mutnts (did you mean --mutants" in capsys.readouterr().err


def test_search_config_takes_aliases_and_flat_sampling_and_checks_booleans():
    config = SearchConfig(max_tokens=64, temperature=0.3)
    assert config.max_new_tokens == 64 and config.sampling.temperature == 0.3
    assert SearchConfig(max_tokens=64) == SearchConfig().replace(max_tokens=64)
    with pytest.raises(ConfigError, match="seed_sample must be true or false"):
        SearchConfig(seed_sample="yes")
    with pytest.raises(ConfigError, match="temperature must be a finite number"):
        SearchConfig(temperature="0.3")


@pytest.mark.parametrize("given, message", [
    (dict(top_k="3"), "top_k must be a whole number, got \"3\""),
    (dict(mutants=3.0), "mutants must be a whole number, got 3.0"),
    (dict(seed=-1), "seed must be a whole number from 0 to 2**63 - 1"),
    (dict(top_p=float("nan")), "top_p must be a finite number above 0 and at most 1"),
    (dict(time_budget="10"), "time_budget must be a finite number of seconds above 0 and at most 1.8e308 or null"),
    (dict(method=3), "method must be a text, got 3"),
])
def test_one_type_check_refuses_a_wrong_type_alike_in_the_config_and_in_serve(given, message):
    """Knob.check is the one type check: SearchConfig and serve's request parser give the same ConfigError."""
    from darwin_chains.cli.serve.app import parse_request

    for make in (SearchConfig, lambda **kw: parse_request(_request(darwin=kw), SearchConfig())):
        with pytest.raises(ConfigError) as refused:
            make(**given)
        assert message in str(refused.value)  # serve names the key as sent: darwin.top_k
