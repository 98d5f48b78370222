"""What the algorithm asks of its components, one class per kind of request.

Each request makes its own call (sync, and async without blocking the event loop), checks the reply, counts what
the call spent, and names the component when the call fails. The driver serves any request the same way, so it
never asks which kind it has.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DarwinError, MutationError, PolicyError, RewardError
from ..prompt import Prompt
from ..protocols import Beam, Reported, Usage, aextend, amutate, ascore, astart, extend_args, mutate_args
from .stops import cut

if TYPE_CHECKING:
    from .driver import Run

log = logging.getLogger(__name__)


class Request:
    """A policy call by default: a failure is a PolicyError naming the policy; the async form runs in a thread."""

    def call(self, run: Run) -> Any:
        raise NotImplementedError

    async def acall(self, run: Run) -> Any:
        return await asyncio.to_thread(self.call, run)

    def check(self, run: Run, reply: Any) -> Any:
        return reply

    def error(self, run: Run, exc: Exception) -> DarwinError:
        return PolicyError(f"policy {run.trace.policy!r} raised {type(exc).__name__}: {exc}")


class Continuation(Request):
    """Can the policy continue a partial response? A remote policy may have to ask its server first."""

    def call(self, run: Run) -> bool:
        return bool(run.policy.supports_continuation)


@dataclass
class Start(Request):
    prompts: list[Prompt]
    max_new_tokens: int

    def call(self, run: Run) -> Any:
        return run.policy.start(self.prompts, self.max_new_tokens)

    async def acall(self, run: Run) -> Any:
        return await astart(run.policy, self.prompts, self.max_new_tokens)

    def check(self, run: Run, reply: Any) -> list[Beam]:
        if isinstance(reply, Reported):
            run.count(reply.usage)
        beams = list(reply)
        if len(beams) != len(self.prompts):
            raise PolicyError(f"policy {run.trace.policy!r} started {len(beams)} beams for {len(self.prompts)} "
                              "prompts; start must return one beam per prompt, in order")
        return beams


@dataclass
class Extend(Request):
    beams: list[Beam]
    max_new_tokens: int
    seed: int
    look_ahead: bool = False  # throw-away tokens decoded only to score a partial response

    def call(self, run: Run) -> Any:
        return run.policy.extend(self.beams, self.max_new_tokens, run.config.sampling, self.seed,
                                 **extend_args(run.policy, run.deadline))

    async def acall(self, run: Run) -> Any:
        return await aextend(run.policy, self.beams, self.max_new_tokens, run.config.sampling, self.seed,
                             run.deadline)

    def check(self, run: Run, reply: Any) -> Usage:
        usage = reply if isinstance(reply, Usage) else Usage()
        run.count(usage)
        if self.look_ahead:
            run.trace.look_ahead_tokens += usage.output_tokens
        if run.config.stop:
            for beam in self.beams:
                _end_at_stop(beam, run.config.stop)
        return usage


def _end_at_stop(beam: Beam, stop: tuple[str, ...]) -> None:
    """A beam whose response reaches a stop sequence ends before it, whatever the policy: the stop text is never
    part of an answer, and a beam that adopts this one's response adopts the cut text and is finished too."""
    response = cut(beam.response, stop)
    if response != beam.response:
        beam.response, beam.finished, beam.finish_reason = response, True, "stop"


@dataclass
class Adopt(Request):
    """Each (beam, donor) pair: a beam that keeps `beam`'s prompt and continues `donor`'s response."""

    pairs: list[tuple[Beam, Beam]]

    def call(self, run: Run) -> list[Beam]:
        return [run.policy.adopt(beam, donor) for beam, donor in self.pairs]

    def check(self, run: Run, reply: list[Beam]) -> list[Beam]:
        for (_, donor), beam in zip(self.pairs, reply):
            if beam.finished and beam.finish_reason is None:
                beam.finish_reason = donor.finish_reason  # a finished response ends the way it ended
        return reply


@dataclass
class Mutate(Request):
    """Exactly `n` variants of `instruction`; anything unusable falls back to the instruction, with a warning.

    A mutator that takes the prompt's context (`supports_context`) gets it, so its variants keep the prompt's
    directions; the context is the same for every parent, since mutation rewrites the request only."""

    instruction: str
    n: int
    seed: int

    def call(self, run: Run) -> Any:
        return run.mutator.mutate(self.instruction, self.n, self.seed,
                                  **mutate_args(run.mutator, run.prompt.context))

    async def acall(self, run: Run) -> Any:
        return await amutate(run.mutator, self.instruction, self.n, self.seed, run.prompt.context)

    def check(self, run: Run, reply: Any) -> list[str]:
        name = run.trace.mutator
        refuse_async(reply, f"mutator {name!r}", MutationError)
        if isinstance(reply, Reported):
            run.count(reply.usage)
            run.trace.mutation_tokens += reply.usage.output_tokens
            run.trace.mutation_rejections += [(c, why) for c, why in reply.rejected]
        if not isinstance(reply, (list, tuple)) or not all(isinstance(v, str) for v in reply):
            raise MutationError(f"mutator {name!r} must return a list of {self.n} strings (the variants); got "
                                f"{type(reply).__name__} {reply!r:.120}")
        variants = [v.strip() for v in reply if v.strip()]
        if len(variants) < self.n:
            log.warning("mutator %r gave %d usable variants of %d; using the original instruction for the rest",
                        run.trace.mutator, len(variants), self.n)
            run.trace.mutation_fallbacks += self.n - len(variants)
            variants += [self.instruction] * (self.n - len(variants))
        return variants[: self.n]

    def error(self, run: Run, exc: Exception) -> DarwinError:
        return MutationError(f"mutator {run.trace.mutator!r} raised {type(exc).__name__}: {exc}")


@dataclass
class Score(Request):
    """Rewards against the original prompt; identical responses are scored once per search (the run's cache)."""

    responses: list[str]
    fresh: list[str] = field(default_factory=list)  # the responses the reward is asked about

    def _fresh(self, run: Run) -> list[str]:
        self.fresh = list(dict.fromkeys(r for r in self.responses if r not in run.scores))
        run.trace.reward_cache_hits += len(self.responses) - len(self.fresh)
        return self.fresh

    def call(self, run: Run) -> Any:
        return run.reward.score(run.prompt, self.fresh) if self._fresh(run) else []

    async def acall(self, run: Run) -> Any:
        return await ascore(run.reward, run.prompt, self.fresh) if self._fresh(run) else []

    def check(self, run: Run, reply: Any) -> list[float]:
        if self.fresh:
            if isinstance(reply, Reported):
                run.count(reply.usage)
                run.trace.reward_tokens += reply.usage.output_tokens
                run.trace.reward_replies += reply.replies
            run.scores.update(zip(self.fresh, self._checked(run.trace.reward, reply)))
            run.trace.reward_calls += len(self.fresh)
        return [run.scores[r] for r in self.responses]

    def _checked(self, name: str, values: Any) -> list[float]:
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
        if len(values) != len(self.fresh):
            raise RewardError(f"reward {name!r} returned {len(values)} scores for {len(self.fresh)} responses")
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise RewardError(
                    f"reward {name!r} returned {v} for response {i + 1} of {len(values)} ({self.fresh[i][:60]!r}); "
                    "a reward must return finite floats: map failures to a low score inside the reward instead"
                )
        return values

    def error(self, run: Run, exc: Exception) -> DarwinError:
        return RewardError(f"reward {run.trace.reward!r} raised {type(exc).__name__}: {exc}")


@dataclass
class Checkpoint(Request):
    """Between steps: emit the settled prefix of `settle` (when given), then enforce the budgets. The reply is
    why the search must stop, or None."""

    settle: list[Beam] | None = None
    timed: bool = True  # False: only the reward threshold is checked

    def call(self, run: Run) -> str | None:
        return run.checkpoint(self.settle, self.timed)

    async def acall(self, run: Run) -> str | None:
        return self.call(run)


@dataclass
class Together(Request):
    """Independent requests served at once (the seed sample decoding while the mutator writes); the reply is
    their replies, in order. Calls overlap, in threads or as tasks; replies are checked one after another."""

    requests: list[Request]

    def call(self, run: Run) -> list[Any]:
        with ThreadPoolExecutor(len(self.requests), thread_name_prefix="darwin-together") as pool:
            futures = [pool.submit(_called, request, run) for request in self.requests]
            return [future.result() for future in futures]

    async def acall(self, run: Run) -> list[Any]:
        tasks = [asyncio.ensure_future(_acalled(request, run)) for request in self.requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    def check(self, run: Run, replies: list[Any]) -> list[Any]:
        return [request.check(run, reply) for request, reply in zip(self.requests, replies)]


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


def _called(request: Request, run: Run) -> Any:
    try:
        return request.call(run)
    except DarwinError:
        raise
    except Exception as exc:
        raise request.error(run, exc) from exc


async def _acalled(request: Request, run: Run) -> Any:
    try:
        return await request.acall(run)
    except DarwinError:
        raise
    except Exception as exc:
        raise request.error(run, exc) from exc
