"""The driver: it serves the algorithm's requests (sync or async), and keeps the books of one search.

The algorithm (`algorithm.py`) says what it needs; each request (`requests.py`) knows how to ask its component
and check the reply. The driver runs that loop, holds the reward cache, counts what the components spent,
enforces the budgets (`time_budget`, `reward_threshold`), emits the progress events and builds the result. On a
failure it keeps what was found on the error (`error.partial`), so no finished work is lost.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..config import SearchConfig
from ..errors import BudgetError, DarwinError, UngroundedError
from ..prompt import Prompt, PromptLike
from ..protocols import Beam, Mutator, Policy, Reward, Usage, as_mutator, as_reward, component_name
from ..trace import Candidate, SearchResult, Trace
from .algorithm import Darwin, Steps
from .requests import Continuation, Request
from .stops import hold_back

EventHandler = Callable[[str, dict], None]
ABSTENTION = "The context does not say."  # the answer `on_ungrounded="abstain"` gives when nothing is grounded
log = logging.getLogger(__name__)


class Search:
    """Reward-guided evolutionary search at decode time.

    Example:
        >>> from darwin_chains import Search, SearchConfig, defaults
        >>> search = Search(defaults.policy(), defaults.reward(), defaults.mutator(), SearchConfig(seed=0))
        >>> result = search.run("Give three tips for writing a clear email.")
        >>> result.answer, result.reward, result.trace.tokens_generated

    `config` fields may also be given as keyword arguments (`Search(policy, reward, mutants=4)`), and per call
    (`search.run(prompt, max_new_tokens=64)`).

    When the prompt carries context with facts to check, the result says whether its answer is grounded in it
    (`result.grounding`), judged by `grounding` (by default the reward's groundedness check, or the shared
    `Groundedness`; False: no verdicts), and `on_ungrounded` says what to do when it is not.
    """

    def __init__(
        self,
        policy: Policy,
        reward: Reward | Callable[[str, str], float],
        mutator: Mutator | Callable[[str, int], Sequence[str]] | None = None,
        config: SearchConfig | None = None,
        *,
        grounding: Any = None,
        **overrides: Any,
    ):
        self.policy = policy
        self.reward = as_reward(reward)
        self.mutator = as_mutator(mutator) if mutator is not None else None
        # What judges an answer's groundedness (`rewards.grounding.Groundedness`): by default the reward's own
        # check, else the shared one; False turns verdicts off.
        self.grounding = grounding if grounding is not None else getattr(self.reward, "grounding", None)
        self.config = (config or SearchConfig()).replace(**overrides) if overrides else (config or SearchConfig())

    def run(
        self,
        prompt: PromptLike,
        *,
        drafts: Sequence[str] = (),
        on_event: EventHandler | None = None,
        streaming: bool = False,
        **overrides: Any,
    ) -> SearchResult:
        """Search for the best answer to `prompt`; `drafts` join the candidates, so the result never scores below them.
        `streaming`: the caller streams the settled text (`stream`), so `stream_commit` applies."""
        run = self._prepare(prompt, drafts, on_event, overrides, streaming)
        try:
            steps, reply = run.begin(run.serve(Continuation())), None
            while True:
                reply = run.serve(steps.send(reply))
        except StopIteration:
            run.ground()
            return run.result()
        except DarwinError as exc:
            run.attach_partial(exc)
            raise

    async def arun(
        self,
        prompt: PromptLike,
        *,
        drafts: Sequence[str] = (),
        on_event: EventHandler | None = None,
        streaming: bool = False,
        **overrides: Any,
    ) -> SearchResult:
        """`run`, with every component call awaited (or run in a worker thread) so the event loop stays free."""
        run = self._prepare(prompt, drafts, on_event, overrides, streaming)
        try:
            steps, reply = run.begin(await run.aserve(Continuation())), None
            while True:
                reply = await run.aserve(steps.send(reply))
        except StopIteration:
            await asyncio.to_thread(run.ground)
            return run.result()
        except DarwinError as exc:
            run.attach_partial(exc)
            raise

    def stream(self, prompt: PromptLike, *, drafts: Sequence[str] = (), stop: Sequence[str] | None = None,
               context: Any = None, **overrides: Any) -> Any:
        """`run` as events: Progress, Delta (settled text), then Final; closing it stops the search (`stream.py`).

        The config's `stop` always applies; `stop` adds sequences at which only the streamed text is cut."""
        from .stream import stream

        return stream(self, prompt, drafts=drafts, stop=stop, context=context, **overrides)

    def astream(self, prompt: PromptLike, *, drafts: Sequence[str] = (), stop: Sequence[str] | None = None,
                context: Any = None, **overrides: Any) -> Any:
        """`stream` for the event loop: the search is a task, cancelled when the iterator is closed."""
        from .stream import astream

        return astream(self, prompt, drafts=drafts, stop=stop, context=context, **overrides)

    def _prepare(self, prompt: PromptLike, drafts: Sequence[str], on_event: EventHandler | None, overrides,
                 streaming: bool = False) -> Run:
        config = self.config.replace(**overrides) if overrides else self.config
        config.check_mutator(self.mutator)
        return Run(self, Prompt.of(prompt), list(drafts), config, on_event, streaming)


class Run:
    """The books of one search: its components, the reward cache, the trace, the budgets and the events."""

    def __init__(self, search: Search, prompt: Prompt, drafts: list[str], config: SearchConfig, on_event,
                 streaming: bool = False):
        self.policy, self.reward, self.mutator = search.policy, search.reward, search.mutator
        self.grounding = search.grounding
        self.verdicts: dict[str, Any] = {}  # response -> grounding.Verdict, for the candidates `result` may pick
        self.prompt, self.drafts, self.config, self.on_event = prompt, drafts, config, on_event
        self.commit = streaming and config.stream_commit
        seed = config.seed if config.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        self.rng = random.Random(seed)
        self.scores: dict[str, float] = {}  # the reward cache: identical responses are scored once per search
        self.algorithm: Darwin | None = None
        self.settled = ""
        self.started = time.perf_counter()
        budget = config.time_budget
        # For policies that stop inside a period (`supports_deadline`); the budget itself is checked below.
        self.deadline = time.monotonic() + budget if budget is not None else None
        self.trace = Trace(
            method=config.method,
            config=config.to_dict(),
            policy=component_name(self.policy),
            reward=component_name(self.reward),
            mutator=component_name(self.mutator) if config.mutates else None,
            granularity="token",
            prompt=prompt.to_dict(),
            seed=seed,
        )

    def begin(self, continues: bool) -> Steps:
        """The algorithm's steps, once the policy has said whether it can continue a partial response."""
        if not continues:
            self.trace.granularity = "response"
            if self.config.replaces:
                self.trace.notes.append(
                    f"{self.trace.policy} cannot continue a partial response, so every beam is a whole response and "
                    "no replacement can happen: the search runs at response granularity"
                )
        self.algorithm = Darwin(self.config, self.prompt, self.drafts, self.rng, self.trace, self.scores, continues,
                                self.emit, self.commit)
        self.emit("search_started", method=self.config.method, beams=self.config.beams, cycles=self.config.cycles)
        return self.algorithm.steps()

    # -- serving requests ----------------------------------------------------------------------------------------

    def serve(self, request: Request) -> Any:
        try:
            reply = request.call(self)
        except DarwinError:
            raise
        except Exception as exc:
            raise request.error(self, exc) from exc
        return request.check(self, reply)

    async def aserve(self, request: Request) -> Any:
        try:
            reply = await request.acall(self)
        except DarwinError:
            raise
        except Exception as exc:
            raise request.error(self, exc) from exc
        return request.check(self, reply)

    def count(self, usage: Usage) -> None:
        """What a component spent, and what it found out, into this search's trace."""
        self.trace.tokens_generated += usage.output_tokens
        self.trace.tokens_encoded += usage.input_tokens
        self.trace.policy_requests += usage.requests
        self.trace.policy_retries += usage.retries
        self.trace.notes.extend(n for n in usage.notes if n not in self.trace.notes)

    # -- budgets and events --------------------------------------------------------------------------------------

    def checkpoint(self, settle: list[Beam] | None, timed: bool) -> str | None:
        """Emit what has settled, then say which budget ran out, if one did."""
        if settle is not None:
            self._settle(settle)
        budget = self.config.time_budget
        if timed and budget is not None and time.perf_counter() - self.started > budget:
            return "time_budget"
        threshold = self.config.reward_threshold
        if threshold is not None and any(c.reward >= threshold for c in self.algorithm.candidates):
            return "reward_threshold"
        return None

    def emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _settle(self, beams: list[Beam]) -> None:
        """Emit the prefix that every possible answer shares: it can no longer change (streaming commits)."""
        if self.on_event is None or len(self.trace.cycles) < self.config.cycles:
            return  # a later cycle could still produce any answer
        # An unfinished beam's tail may be the start of a stop sequence that its next tokens complete and cut off.
        stop = self.config.stop
        texts = [b.response if b.finished or not stop else hold_back(b.response, stop) for b in beams]
        texts += [c.response for c in self.algorithm.candidates]
        prefix = os.path.commonprefix(texts)
        cut = max(prefix.rfind(" "), prefix.rfind("\n")) + 1  # whole words only: the next token may merge
        if cut > len(self.settled):
            self.settled = prefix[:cut]
            self.emit("settled", text=self.settled)

    # -- the result ----------------------------------------------------------------------------------------------

    def ground(self) -> None:
        """Verdicts on the answers `result` may return, best first: the best one's, and with `on_ungrounded` set,
        down to the first grounded one. A check that fails leaves a note, never the answer, behind."""
        candidates = sorted(self.algorithm.candidates if self.algorithm else [], key=lambda c: -c.reward)
        if self.grounding is False or not candidates:
            return
        try:
            from ..rewards.grounding import shared_groundedness

            checker = self.grounding or shared_groundedness()
            if not checker.applies(self.prompt):
                return
            for candidate in candidates:
                verdict = self.verdicts[candidate.response] = checker.verdict(self.prompt, candidate.response)
                if verdict is None or verdict.grounded or self.config.on_ungrounded == "answer":
                    break
        except Exception as exc:  # noqa: BLE001 - the answer stands without a verdict
            log.warning("the groundedness check failed: %s", exc, exc_info=True)
            self.trace.notes.append(f"the groundedness check failed ({type(exc).__name__}: {exc}); no verdict")

    def _grounded(self, pool: list[Candidate], best: Candidate) -> tuple[Candidate, dict[str, Any] | None]:
        """The answer `on_ungrounded` returns instead of an ungrounded `best`, with the verdict to report."""
        verdict = self.verdicts.get(best.response)
        if verdict is None:
            return best, None
        mode, report = self.config.on_ungrounded, verdict.to_dict()
        if verdict.grounded or mode == "answer":
            return best, report
        said = ", ".join(verdict.unsupported)
        grounded = [c for c in pool if getattr(self.verdicts.get(c.response), "grounded", False)]
        if grounded:
            chosen = max(grounded, key=lambda c: c.reward)
            self.trace.notes.append(f"on_ungrounded={mode}: the best answer (reward {best.reward:.3f}) states {said}, "
                                    f"which the context does not support; returned the best grounded candidate "
                                    f"(reward {chosen.reward:.3f})")
            return chosen, self.verdicts[chosen.response].to_dict() | {"action": "replaced"}
        if mode == "abstain":
            self.trace.notes.append(f"on_ungrounded=abstain: no candidate was grounded (the best states {said}); "
                                    "answered that the context does not say")
            return Candidate(ABSTENTION, best.reward, "abstention", self.prompt.request), report | {"action": "abstained"}
        message = (f"no candidate answer is grounded in the prompt's context: the best one states {said}, which the "
                   f"context does not support")
        if mode == "raise":
            error = UngroundedError(f"{message}; give the retriever more context, or set on_ungrounded to 'answer', "
                                    "'flag' or 'abstain' (the best answer is on this error's `partial`)")
            error.partial = SearchResult(best.response, best.reward, self.trace, best.finish_reason, report)
            raise error
        log.warning("%s (on_ungrounded=flag)", message)
        self.trace.notes.append(f"on_ungrounded=flag: {message}")
        return best, report | {"action": "flagged"}

    def result(self) -> SearchResult:
        pool = self.algorithm.candidates if self.algorithm else []
        if not pool and self.algorithm:  # a budget ran out before anything finished: the best partial response
            pool = [Candidate(b.response, self.scores.get(b.response, -math.inf), "partial", b.prompt.request,
                              "length") for b in self.algorithm.live]
            if self.trace.stopped == "time_budget" and not any(c.response for c in pool):  # no answer at all
                raise BudgetError(f"the search ran out of its time_budget ({self.config.time_budget:g} s) before it "
                                  "decoded any text (encoding the prompt took the time); raise time_budget or "
                                  "shorten the prompt")
        if not pool:
            raise DarwinError("the search stopped before decoding anything; raise time_budget")
        best, grounding = self._grounded(pool, max(pool, key=lambda c: c.reward))
        self.trace.answer_source = best.source
        self.trace.seconds = time.perf_counter() - self.started
        self.emit("search_finished", reward=best.reward, source=best.source, seconds=self.trace.seconds)
        return SearchResult(best.response, best.reward, self.trace, best.finish_reason, grounding)

    def attach_partial(self, exc: DarwinError) -> None:
        """Keep what was found before the failure on the error, so no finished work is lost."""
        algorithm = self.algorithm
        if exc.partial is None and algorithm is not None and (algorithm.candidates or algorithm.live):
            algorithm.keep_finished("failed")
            exc.partial = self.result()
