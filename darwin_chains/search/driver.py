"""The driver: it serves the algorithm's requests (sync or async), and keeps the books of one search.

The algorithm (`algorithm.py`) says what it needs; each request (`requests.py`) knows how to ask its component
and check the reply. The driver runs that loop, holds the reward cache, counts what the components spent,
enforces the budgets (`time_budget`, `reward_threshold`), emits the progress events and builds the result. On a
failure it keeps what was found on the error (`error.partial`), so no finished work is lost.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..config import SearchConfig
from ..errors import BudgetError, DarwinError
from ..prompt import Prompt, PromptLike
from ..protocols import Beam, Mutator, Policy, Reward, Usage, as_mutator, as_reward, component_name
from ..trace import Candidate, SearchResult, Trace
from .algorithm import Darwin, Steps
from .requests import Continuation, Request
from .stops import hold_back

EventHandler = Callable[[str, dict], None]


class Search:
    """Reward-guided evolutionary search at decode time.

    Example:
        >>> from darwin_chains import Search, SearchConfig, defaults
        >>> search = Search(defaults.policy(), defaults.reward(), defaults.mutator(), SearchConfig(seed=0))
        >>> result = search.run("Give three tips for writing a clear email.")
        >>> result.answer, result.reward, result.trace.tokens_generated

    `config` fields may also be given as keyword arguments (`Search(policy, reward, mutants=4)`), and per call
    (`search.run(prompt, max_new_tokens=64)`).
    """

    def __init__(
        self,
        policy: Policy,
        reward: Reward | Callable[[str, str], float],
        mutator: Mutator | Callable[[str, int], Sequence[str]] | None = None,
        config: SearchConfig | None = None,
        **overrides: Any,
    ):
        self.policy = policy
        self.reward = as_reward(reward)
        self.mutator = as_mutator(mutator) if mutator is not None else None
        self.config = (config or SearchConfig()).replace(**overrides) if overrides else (config or SearchConfig())

    def run(
        self,
        prompt: PromptLike,
        *,
        drafts: Sequence[str] = (),
        on_event: EventHandler | None = None,
        **overrides: Any,
    ) -> SearchResult:
        """Search for the best answer to `prompt`; `drafts` join the candidates, so the result never scores below them."""
        run = self._prepare(prompt, drafts, on_event, overrides)
        try:
            steps, reply = run.begin(run.serve(Continuation())), None
            while True:
                reply = run.serve(steps.send(reply))
        except StopIteration:
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
        **overrides: Any,
    ) -> SearchResult:
        """`run`, with every component call awaited (or run in a worker thread) so the event loop stays free."""
        run = self._prepare(prompt, drafts, on_event, overrides)
        try:
            steps, reply = run.begin(await run.aserve(Continuation())), None
            while True:
                reply = await run.aserve(steps.send(reply))
        except StopIteration:
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

    def _prepare(self, prompt: PromptLike, drafts: Sequence[str], on_event: EventHandler | None, overrides) -> Run:
        config = self.config.replace(**overrides) if overrides else self.config
        config.check_mutator(self.mutator)
        return Run(self, Prompt.of(prompt), list(drafts), config, on_event)


class Run:
    """The books of one search: its components, the reward cache, the trace, the budgets and the events."""

    def __init__(self, search: Search, prompt: Prompt, drafts: list[str], config: SearchConfig, on_event):
        self.policy, self.reward, self.mutator = search.policy, search.reward, search.mutator
        self.prompt, self.drafts, self.config, self.on_event = prompt, drafts, config, on_event
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
                                self.emit)
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
        best = max(pool, key=lambda c: c.reward)
        self.trace.answer_source = best.source
        self.trace.seconds = time.perf_counter() - self.started
        self.emit("search_finished", reward=best.reward, source=best.source, seconds=self.trace.seconds)
        return SearchResult(best.response, best.reward, self.trace, best.finish_reason)

    def attach_partial(self, exc: DarwinError) -> None:
        """Keep what was found before the failure on the error, so no finished work is lost."""
        algorithm = self.algorithm
        if exc.partial is None and algorithm is not None and (algorithm.candidates or algorithm.live):
            algorithm.keep_finished("failed")
            exc.partial = self.result()
