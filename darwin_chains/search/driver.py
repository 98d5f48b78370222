"""The driver: it serves the algorithm's requests (sync or async), and keeps the books of one search.

The algorithm (`algorithm.py`) says what it needs as plain data (`requests.py`). The driver is the only code that
calls a component: it runs that loop, checks each reply, holds the reward cache, counts what the components spent,
enforces the budgets (`time_budget`, `reward_threshold`), emits the progress events and builds the result. On a
failure it keeps what was found on the error (`error.partial`), so no finished work is lost.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..config import SearchConfig
from ..errors import BudgetError, DarwinError, MutationError, PolicyError, RewardError, UngroundedError
from ..prompt import Prompt, PromptLike
from ..protocols import (SEARCH_SESSION, Beam, Mutator, Policy, Reported, Reward, Usage, aextend, amutate, as_mutator,
                         as_reward, ascore, astart, component_name, extend_args, mutate_args)
from ..trace import Candidate, SearchResult, Trace
from .algorithm import Darwin, Steps
from .requests import Adopt, Checkpoint, Continuation, Extend, Mutate, Request, Score, Start, Together
from .stops import cut

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
        session = SEARCH_SESSION.set(run.session)
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
        finally:
            SEARCH_SESSION.reset(session)

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
        session = SEARCH_SESSION.set(run.session)
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
        finally:
            SEARCH_SESSION.reset(session)

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
    """The books of one search: its components, the reward cache, the trace, the budgets and the events. It is the
    one place that calls a component: `serve` answers each of the algorithm's requests (`requests.py`)."""

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
        self.session = f"darwin-{uuid.uuid4().hex}"  # SEARCH_SESSION while this search runs
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

    @property
    def whole_answers_only(self) -> bool:
        """The prompt is constrained to a JSON schema, and the policy constrains it only within one call."""
        policy = self.policy
        return (self.prompt.json_schema is not None and getattr(policy, "supports_json_schema", False)
                and not getattr(policy, "continues_json_schema", True))

    def begin(self, continues: bool) -> Steps:
        """The algorithm's steps, once the policy has said whether it can continue a partial response."""
        if not continues:
            self.trace.granularity = "response"
            if self.config.replaces:
                why = ("restarts its grammar with every request, so a beam constrained to the JSON schema is decoded "
                       "whole" if self.whole_answers_only else "cannot continue a partial response")
                self.trace.notes.append(f"{self.trace.policy} {why}, so every beam is a whole response and no "
                                        "replacement can happen: the search runs at response granularity")
        self.algorithm = Darwin(self.config, self.prompt, self.drafts, self.rng, self.trace, continues, self.emit,
                                self.commit, mutation_waits=not getattr(self.mutator, "immediate", False))
        config = self.config
        self.emit("search_started", method=config.method, beams=config.beams, cycles=config.mutation_cycles_used)
        return self.algorithm.steps()

    # -- serving requests: call the component, then check its reply and count what it spent ---------------------

    def serve(self, request: Request) -> Any:
        with self._blamed(request):
            reply = self._call(request)
        return self._check(request, reply)

    async def aserve(self, request: Request) -> Any:
        with self._blamed(request):
            reply = await self._acall(request)
        return self._check(request, reply)

    @contextlib.contextmanager
    def _blamed(self, request: Request) -> Iterator[None]:
        """A component's own exception becomes the library's error naming that component."""
        try:
            yield
        except DarwinError:
            raise
        except Exception as exc:
            kind, error = ((f"mutator {self.trace.mutator!r}", MutationError) if isinstance(request, Mutate) else
                           (f"reward {self.trace.reward!r}", RewardError) if isinstance(request, Score) else
                           (f"policy {self.trace.policy!r}", PolicyError))
            raise error(f"{kind} raised {type(exc).__name__}: {exc}") from exc

    def _call(self, request: Request) -> Any:
        policy, config = self.policy, self.config
        match request:
            case Continuation():
                return bool(policy.supports_continuation) and not self.whole_answers_only
            case Start(prompts, max_new_tokens):
                return policy.start(prompts, max_new_tokens)
            case Extend(beams, max_new_tokens, seed):
                return policy.extend(beams, max_new_tokens, config.sampling, seed,
                                     **extend_args(policy, self.deadline))
            case Adopt(pairs):
                return [policy.adopt(beam, donor) for beam, donor in pairs]
            case Mutate(instruction, n, seed):
                return self.mutator.mutate(instruction, n, seed, **mutate_args(self.mutator, self.prompt.context))
            case Score(responses):
                fresh = self._fresh(responses)
                return fresh, self.reward.score(self.prompt, fresh) if fresh else []
            case Checkpoint():
                return self._checkpoint(request)
            case Together(requests):
                with ThreadPoolExecutor(len(requests), thread_name_prefix="darwin-together") as pool:
                    # each call in this search's context (its session key): a thread does not inherit it
                    futures = [pool.submit(contextvars.copy_context().run, self._blamed_call, r) for r in requests]
                    return [future.result() for future in futures]
        raise TypeError(f"not a request: {request!r}")

    async def _acall(self, request: Request) -> Any:
        """`_call`, awaiting async components and running the others in a worker thread."""
        match request:
            case Start(prompts, max_new_tokens):
                return await astart(self.policy, prompts, max_new_tokens)
            case Extend(beams, max_new_tokens, seed):
                return await aextend(self.policy, beams, max_new_tokens, self.config.sampling, seed, self.deadline)
            case Mutate(instruction, n, seed):
                return await amutate(self.mutator, instruction, n, seed, self.prompt.context)
            case Score(responses):
                fresh = self._fresh(responses)
                return fresh, await ascore(self.reward, self.prompt, fresh) if fresh else []
            case Checkpoint():
                return self._checkpoint(request)
            case Together(requests):
                tasks = [asyncio.ensure_future(self._ablamed_call(r)) for r in requests]
                try:
                    return list(await asyncio.gather(*tasks))
                finally:
                    for task in tasks:
                        task.cancel()
        return await asyncio.to_thread(self._call, request)

    def _blamed_call(self, request: Request) -> Any:
        with self._blamed(request):
            return self._call(request)

    async def _ablamed_call(self, request: Request) -> Any:
        with self._blamed(request):
            return await self._acall(request)

    def _check(self, request: Request, reply: Any) -> Any:
        match request:
            case Start(prompts):
                return self._started(prompts, reply)
            case Extend(beams, _, _, look_ahead):
                return self._extended(beams, reply, look_ahead)
            case Adopt(pairs):
                for (_, donor), beam in zip(pairs, reply):
                    if beam.finished and beam.finish_reason is None:
                        beam.finish_reason = donor.finish_reason  # a finished response ends the way it ended
                return reply
            case Mutate(instruction, n):
                return self._variants(instruction, n, reply)
            case Score(responses):
                return self._scored(responses, *reply)
            case Together(requests):
                return [self._check(r, each) for r, each in zip(requests, reply)]
        return reply

    def count(self, usage: Usage) -> None:
        """What a component spent, and what it found out, into this search's trace."""
        self.trace.tokens_generated += usage.output_tokens
        self.trace.tokens_encoded += usage.input_tokens
        self.trace.policy_requests += usage.requests
        self.trace.policy_retries += usage.retries
        self.trace.notes.extend(n for n in usage.notes if n not in self.trace.notes)

    def _started(self, prompts: list[Prompt], reply: Any) -> list[Beam]:
        if isinstance(reply, Reported):
            self.count(reply.usage)
        beams = list(reply)
        if len(beams) != len(prompts):
            raise PolicyError(f"policy {self.trace.policy!r} started {len(beams)} beams for {len(prompts)} prompts; "
                              "start must return one beam per prompt, in order")
        return beams

    def _extended(self, beams: list[Beam], reply: Any, look_ahead: bool) -> None:
        usage = reply if isinstance(reply, Usage) else Usage()
        self.count(usage)
        if look_ahead:
            self.trace.look_ahead_tokens += usage.output_tokens
        if self.config.stop:
            for beam in beams:
                _end_at_stop(beam, self.config.stop)

    def _variants(self, instruction: str, n: int, reply: Any) -> list[str]:
        """Exactly `n` variants; anything unusable falls back to the instruction, with a warning."""
        name = self.trace.mutator
        refuse_async(reply, f"mutator {name!r}", MutationError)
        if isinstance(reply, Reported):
            self.count(reply.usage)
            self.trace.mutation_tokens += reply.usage.output_tokens
            self.trace.mutation_rejections += [(c, why) for c, why in reply.rejected]
        if not isinstance(reply, (list, tuple)) or not all(isinstance(v, str) for v in reply):
            raise MutationError(f"mutator {name!r} must return a list of {n} strings (the variants); got "
                                f"{type(reply).__name__} {reply!r:.120}")
        variants = [v.strip() for v in reply if v.strip()]
        if len(variants) < n:
            log.warning("mutator %r gave %d usable variants of %d; using the original instruction for the rest",
                        name, len(variants), n)
            self.trace.mutation_fallbacks += n - len(variants)
            variants += [instruction] * (n - len(variants))
        return variants[:n]

    def _fresh(self, responses: list[str]) -> list[str]:
        """The responses the reward has not scored in this search yet, once each."""
        fresh = list(dict.fromkeys(r for r in responses if r not in self.scores))
        self.trace.reward_cache_hits += len(responses) - len(fresh)
        return fresh

    def _scored(self, responses: list[str], fresh: list[str], values: Any) -> list[float]:
        if fresh:
            if isinstance(values, Reported):
                self.count(values.usage)
                self.trace.reward_tokens += values.usage.output_tokens
                self.trace.reward_replies += values.replies
            self.scores.update(zip(fresh, _checked_rewards(self.trace.reward, fresh, values)))
            self.trace.reward_calls += len(fresh)
        return [self.scores[r] for r in responses]

    # -- budgets and events --------------------------------------------------------------------------------------

    def _checkpoint(self, checkpoint: Checkpoint) -> str | None:
        """Emit what has settled, then say which budget ran out, if one did."""
        if checkpoint.settle is not None:
            self._settle(checkpoint.settle)
        budget = self.config.time_budget
        if checkpoint.timed and budget is not None and time.perf_counter() - self.started > budget:
            return "time_budget"
        threshold = self.config.reward_threshold
        if threshold is not None and checkpoint.best >= threshold:
            return "reward_threshold"
        return None

    def emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _settle(self, texts: list[str]) -> None:
        """Emit the prefix that every possible answer shares: it can no longer change (streaming commits)."""
        prefix = os.path.commonprefix(texts)
        cut = max(prefix.rfind(" "), prefix.rfind("\n")) + 1  # whole words only: the next token may merge
        if self.on_event is not None and cut > len(self.settled):
            self.settled = prefix[:cut]
            self.emit("settled", text=self.settled)

    # -- the result ----------------------------------------------------------------------------------------------

    def ground(self) -> None:
        """Verdicts on the answers `result` may return, best first: the best one's, and with `on_ungrounded` set,
        down to the first grounded one. A check that fails leaves a note, never the answer, behind."""
        finished = [c for c in self.algorithm.answers() if c.source != "partial"] if self.algorithm else []
        candidates = sorted(finished, key=lambda c: -c.reward)
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

    def result(self, why: str | None = None) -> SearchResult:
        """The best answer; `why` the search ended before its last step (then the running cycle's finished beams
        count too, and when nothing has finished, the best partial response stands in)."""
        pool = self.algorithm.answers(why) if self.algorithm else []
        if pool and all(c.source == "partial" for c in pool):  # a budget ran out before anything finished
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
        if exc.partial is None and self.algorithm is not None and self.algorithm.answers():
            exc.partial = self.result("failed")


def _end_at_stop(beam: Beam, stop: tuple[str, ...]) -> None:
    """A beam whose response reaches a stop sequence ends before it, whatever the policy: the stop text is never
    part of an answer, and a beam that adopts this one's response adopts the cut text and is finished too."""
    response = cut(beam.response, stop)
    if response != beam.response:
        beam.response, beam.finished, beam.finish_reason = response, True, "stop"


def _checked_rewards(name: str, fresh: list[str], values: Any) -> list[float]:
    """A reward's reply as one finite float per response, or a RewardError that says what was wrong."""
    refuse_async(values, f"reward {name!r}", RewardError)
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise RewardError(f"reward {name!r} must return a list of numbers, one per response; got "
                          f"{type(values).__name__} {values!r:.120}")
    values = list(values)
    refuse_async(values, f"reward {name!r}", RewardError)
    wrong = [v for v in values if isinstance(v, (str, bytes)) or not hasattr(type(v), "__float__")]
    if wrong:
        raise RewardError(f"reward {name!r} must return numbers, one per response; got {type(wrong[0]).__name__} "
                          f"{wrong[0]!r:.60} (a number as text is not a score: return float(...))")
    values = [float(v) for v in values]
    if len(values) != len(fresh):
        raise RewardError(f"reward {name!r} returned {len(values)} scores for {len(fresh)} responses")
    for i, v in enumerate(values):
        if not math.isfinite(v):
            raise RewardError(
                f"reward {name!r} returned {v} for response {i + 1} of {len(values)} ({fresh[i][:60]!r}); "
                "a reward must return finite floats: map failures to a low score inside the reward instead"
            )
    return values


def refuse_async(reply: Any, who: str, error: type[DarwinError]) -> None:
    """An async component called on a sync path returns coroutines: say which entry point awaits them."""
    found = [r for r in ([reply] if not isinstance(reply, (list, tuple)) else reply) if inspect.isawaitable(r)]
    if found:
        for coroutine in found:
            if inspect.iscoroutine(coroutine):
                coroutine.close()  # never awaited, on purpose
        raise error(f"{who} is async (it returned a coroutine) and was called from a sync entry point; use the async "
                    "one: Search.arun or astream, LangChain's ainvoke, abatch or astream, LlamaIndex's achat, "
                    "acomplete or astream_chat")
