"""The groundedness term on the real MiniLM and the real default reward: grounded answers beat the same answers with
a fact changed, a prompt without context scores exactly as before, and a RAG chain's reward sees the context."""
from __future__ import annotations

import pytest

from darwin_chains import Prompt, defaults
from darwin_chains.rewards import PreferenceReward
from darwin_chains.rewards.grounding import Groundedness, settled
from darwin_chains.rewards.hidden_states import shared_encoder
from darwin_chains.testing.contracts import RewardContract

NOTES = ("The community pool opens at 7:15 AM every weekday and at 9 AM on weekends.\n\n"
         "The library closes early on Fridays, at 4 PM.\n\nParking permits cost 40 dollars a month.\n\n"
         "The farmers market runs every Saturday from May to October.\n\nThe gym offers free yoga on Tuesdays.")
POOL = Prompt.of([("system", f"Answer the question using only this context.\n\nContext:\n{NOTES}"),
                  ("user", "When does the pool open on weekdays?")])
#: (grounded, one fact changed): the issue's own pair first
PAIRS = [
    ("The pool opens at 7:15 AM every weekday.", "The pool opens on Monday, June 15th."),
    ("The pool opens at 7:15 AM every weekday.", "The pool opens at 8:15 AM every weekday."),
    ("On weekdays it opens at 7:15 AM, and at 9 AM on weekends.", "On weekdays it opens at 7:15 AM, and at 9 PM on "
     "weekends."),
    ("A parking permit costs 40 dollars a month.", "A parking permit costs 55 dollars a month."),
    ("The farmers market runs every Saturday.", "The farmers market runs every Sunday."),
]


@pytest.fixture(scope="module")
def grounding(minilm):
    return Groundedness(embedder=minilm)


@pytest.fixture(scope="module")
def rewards(smollm2_dir, grounding):
    encoder = shared_encoder()
    return PreferenceReward(encoder=encoder, grounding=grounding), PreferenceReward(encoder=encoder, grounding=False)


class TestGroundednessContract(RewardContract):
    prompt = POOL

    @pytest.fixture
    def reward(self, grounding):
        return grounding


@pytest.mark.parametrize("grounded, changed", PAIRS)
def test_the_grounded_answer_beats_the_one_with_a_fact_changed(rewards, grounded, changed):
    with_context, blind = rewards
    good, bad = with_context.score(POOL, [grounded, changed])
    assert good > bad
    blind_good, blind_bad = blind.score(POOL, [grounded, changed])
    assert good - bad > blind_good - blind_bad  # the term, not the head, makes the difference


def test_without_context_the_default_reward_is_the_head_alone_exactly(rewards):
    with_context, blind = rewards
    prompt = Prompt.of("When does the pool open on weekdays?")
    responses = ["The pool opens at 7:15 AM every weekday.", "It opens on Monday, June 15th.", "It opens at 7:1", ""]
    assert with_context.score(prompt, responses) == blind.score(prompt, responses)
    assert with_context.grounding.score(prompt, responses) == [0.0] * 4
    assert isinstance(defaults.reward(), PreferenceReward) and defaults.reward().grounding is not None


def test_an_instruction_without_facts_is_no_evidence_either_way(grounding):
    answer = ["The capital of France is Paris, home to 2.1 million people."]
    persona = Prompt.of([("system", "You are a helpful assistant."), ("user", "What is the capital of France?")])
    assert not grounding.applies(persona) and grounding.parts(persona, answer) == [(0.0, 0.0)]
    unrelated = Prompt.of([("system", "The gym offers free yoga on Tuesdays at 6 PM."),
                           ("user", "What is the capital of France?")])
    (support, unsupported), = grounding.parts(unrelated, answer)
    assert grounding.applies(unrelated) and unsupported == 0.0 and support < 0.05  # facts, but about something else


def test_a_word_still_being_decoded_costs_nothing(grounding):
    assert settled("The pool opens at 7:1") == "The pool opens at "
    assert settled("The pool opens at 7:15.") == "The pool opens at 7:15."
    (_, partial), (_, wrong) = grounding.parts(POOL, ["The pool opens at 7:1", "The pool opens at 8:15 "])
    assert partial == 0.0 and wrong >= 1.0


def test_the_context_is_embedded_once_per_context(minilm):
    class Counting:
        def __init__(self, embedder):
            self.embedder, self.texts = embedder, []

        def encode(self, texts):
            self.texts += list(texts)
            return self.embedder.encode(texts)

    counting = Counting(minilm)
    grounding = Groundedness(embedder=counting)
    grounding.score(POOL, ["The pool opens at 7:15 AM", "It opens"])
    first = len(counting.texts)
    grounding.score(POOL, ["The pool opens at 7:15 AM every weekday."])  # the next period of one beam
    assert counting.texts[first:] == ["The pool opens at 7:15 AM every weekday."]


def test_a_rag_chain_reward_sees_the_retrieved_context(smollm2_policy):
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_darwin import DarwinAlign

    seen = []

    def mentions_the_time(prompt, response):
        seen.append(prompt.context)
        return float("7:15" in response) - len(response) / 1000

    template = ChatPromptTemplate.from_messages([("system", "Context:\n{context}"), ("human", "{question}")])
    align = DarwinAlign(policy=smollm2_policy, reward=mentions_the_time, mutants=3, keep_top=1,
                        replacement_period=4, max_new_tokens=8)
    message = (template | align).invoke({"context": NOTES, "question": "When does the pool open on weekdays?"})
    assert message.content.strip()
    assert seen and all(context == f"Context:\n{NOTES}" for context in seen)


def test_a_value_taken_from_elsewhere_in_the_context_loses(rewards, minilm):
    """9 AM is in the notes, for weekends: every word of the wrong answer is in the context, so only the reader,
    which knows which value belongs where, can tell."""
    with_context, _ = rewards
    grounded, swapped = "The pool opens at 7:15 AM every weekday.", "The pool opens at 9 AM every weekday."
    good, bad = with_context.score(POOL, [grounded, swapped])
    assert good > bad
    lookup = Groundedness(embedder=minilm, reader=False)
    (_, lookup_bad), (_, reader_bad) = (g.parts(POOL, [grounded, swapped])[1] for g in (lookup, with_context.grounding))
    assert lookup_bad == 0.0 < reader_bad  # unsupported cost: the lookup finds nothing wrong; the reader does


def test_the_verdict_says_which_specifics_the_context_does_not_support(grounding):
    made_up = grounding.verdict(POOL, "The pool opens at 11:55 AM on weekdays, and parking costs 40 dollars.")
    assert not made_up.grounded and made_up.unsupported == ("11:55 AM",)
    assert 0 < made_up.score < 1 and made_up.checked >= 2
    swapped = grounding.verdict(POOL, "The pool opens at 9 AM on weekdays.")
    assert not swapped.grounded and swapped.unsupported == ("9 AM",)
    right = grounding.verdict(POOL, "The pool opens at 7:15 AM on weekdays.")
    assert right.grounded and right.score == 1.0 and right.unsupported == () and right.checked >= 1
    assert grounding.verdict(Prompt.of("When does the pool open?"), "At 11:55 AM.") is None  # no context: no verdict


@pytest.mark.cpu_kernels
def test_the_readers_doubts_depend_on_the_prompt_and_sentence_alone(smollm2_dir):
    """Bitwise, in fp32: read fresh or from the cache, alone or after other prompts and sentences."""
    from darwin_chains.rewards.reader import Reader

    sentence = "The pool opens at 9 AM on weekdays, and the library closes at 4 PM on Fridays."
    spans = [(sentence.index("9"), sentence.index("9") + 1), (sentence.index("4"), sentence.index("4") + 1)]
    first = Reader(dtype="float32")
    alone = first.doubts(POOL, sentence, spans)
    first.doubts(Prompt.of([("system", "Context: the gym opens at 6 AM."), ("user", "When?")]), "At 6 AM.", [(3, 4)])
    first.doubts(POOL, "Parking costs 40 dollars a month.", [(14, 16)])
    first._doubts.clear()  # read again, from the cached prompt cropped back after every other sentence
    assert first.doubts(POOL, sentence, spans) == alone
    assert Reader(dtype="float32").doubts(POOL, sentence, spans) == alone
    assert alone[0] > 1.0 and alone[1] < 0.5  # 9 AM is the weekend's time; 4 PM is the library's on Fridays


def test_a_real_search_reports_its_verdict_and_abstains_only_when_nothing_is_grounded(smollm2_policy):
    """The embedded policy, the default reward and the RAG benchmark's documents: the answer carries a verdict,
    and with on_ungrounded="abstain" the search returns the best grounded candidate, or the abstention when no
    candidate is grounded (which of the two depends on what the seeded model writes; both are checked)."""
    import importlib.util
    from pathlib import Path

    from darwin_chains import Search, SearchConfig
    from darwin_chains.search.driver import ABSTENTION

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "grounding" / "passages.py"
    spec = importlib.util.spec_from_file_location("grounding_passages", path)
    passages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(passages)
    documents = "\n\n".join(p[1] for p in passages.PASSAGES[:4])  # pool, water, library, staff meeting
    reward = defaults.reward()
    config = SearchConfig(method="best-of-n", mutants=3, max_new_tokens=24, seed=2, on_ungrounded="abstain")
    for question in ("When does the pool open on weekdays?", "What is the pool's phone number?"):
        prompt = Prompt.of([("system", f"Answer the question using only this context.\n\nContext:\n{documents}"),
                            ("user", question)])
        result = Search(smollm2_policy, reward, None, config).run(prompt)
        verdicts = {r: reward.grounding.verdict(prompt, r) for r in result.trace.cycles[0].responses}
        grounded = [r for r, v in verdicts.items() if v.grounded]
        assert result.grounding is not None and result.metadata()["grounding"] == result.grounding
        if grounded:
            assert result.answer in grounded and result.grounding["grounded"]
        else:
            assert result.answer == ABSTENTION and result.grounding["action"] == "abstained"
            assert result.grounding["unsupported"]  # it says what the best answer made up
