"""Darwin (Algorithm 1 of Hung et al. 2024, arXiv 2406.15193) and its baselines, over a Policy, Mutator and Reward.

The algorithm is written once, as a generator that yields what it needs from the components (`_Mutate`,
`_Extend`, `_Score`) and receives the answers. `Search.run` serves those requests with sync calls and
`Search.arun` with awaits, so the two paths cannot drift apart.

Darwin, per mutation cycle:
  1. pick a parent instruction uniformly from the archive and mutate it into `mutants` variants;
  2. decode one beam per variant (`beams_per_mutant` each) in lock-step, `replacement_period` (m) tokens at a
     time; after every period score all partial responses against the ORIGINAL instruction and let every
     unfinished beam outside the top `keep_top` (k) adopt the response of a random top-k beam, keeping its own
     instruction; finished beams are never replaced;
  3. count how often each beam slot was in the top-k;
  4. the most frequent winners (`archive_size`) whose final reward beats the parent's take its place.
The answer is the highest-reward finished response over all cycles, the plain seed sample and any drafts.

The baselines reuse the same loop: Best-of-N and plain sampling decode the original instruction with no
replacement, mutation + Best-of-N decodes variants with no replacement, sampling + replacement replaces
without mutating.
"""
from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from .archive import Archive, Entry, trace_reward
from ..config import SearchConfig
from ..errors import DarwinError, MutationError, PolicyError, RewardError
from ..prompt import Prompt, PromptLike
from ..protocols import (
    Beam,
    Mutator,
    Policy,
    Reward,
    Usage,
    aextend,
    amutate,
    as_mutator,
    as_reward,
    ascore,
    component_name,
)
from ..trace import Candidate, Cycle, Period, SearchResult, Trace

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict], None]


@dataclass
class _Mutate:
    instruction: str
    n: int
    seed: int


@dataclass
class _Extend:
    beams: list[Beam]
    max_new_tokens: int
    seed: int


@dataclass
class _Score:
    responses: list[str]


class _Stop(Exception):
    def __init__(self, reason: str):
        self.reason = reason


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
        steps, reply = run.steps(), None
        try:
            while True:
                request = steps.send(reply)
                reply = run.serve(request, self._call(request, run))
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
        """`run`, with the model work awaited (or run in worker threads) so the event loop stays free."""
        run = self._prepare(prompt, drafts, on_event, overrides)
        steps, reply = run.steps(), None
        try:
            while True:
                request = steps.send(reply)
                reply = run.serve(request, await self._acall(request, run))
        except StopIteration:
            return run.result()
        except DarwinError as exc:
            run.attach_partial(exc)
            raise

    def _prepare(self, prompt: PromptLike, drafts: Sequence[str], on_event: EventHandler | None, overrides) -> _Run:
        config = self.config.replace(**overrides) if overrides else self.config
        if config.mutates and self.mutator is None:
            raise DarwinError(f"method {config.method!r} mutates instructions but no mutator was given")
        return _Run(self, Prompt.of(prompt), list(drafts), config, on_event)

    def _call(self, request: Any, run: _Run) -> Any:
        try:
            if isinstance(request, _Extend):
                return self.policy.extend(request.beams, request.max_new_tokens, run.config.sampling, request.seed)
            if isinstance(request, _Score):
                return self.reward.score(run.prompt, request.responses)
            return self.mutator.mutate(request.instruction, request.n, request.seed)
        except DarwinError:
            raise
        except Exception as exc:
            raise run.component_error(request, exc) from exc

    async def _acall(self, request: Any, run: _Run) -> Any:
        try:
            if isinstance(request, _Extend):
                return await aextend(self.policy, request.beams, request.max_new_tokens, run.config.sampling, request.seed)
            if isinstance(request, _Score):
                return await ascore(self.reward, run.prompt, request.responses)
            return await amutate(self.mutator, request.instruction, request.n, request.seed)
        except DarwinError:
            raise
        except Exception as exc:
            raise run.component_error(request, exc) from exc


class _Run:
    """The state of one search: its generator of requests, the candidates, the reward cache and the trace."""

    def __init__(self, search: Search, prompt: Prompt, drafts: list[str], config: SearchConfig, on_event):
        self.search, self.policy, self.prompt, self.drafts, self.config = search, search.policy, prompt, drafts, config
        self.on_event = on_event
        seed = config.seed if config.seed is not None else int.from_bytes(os.urandom(4), "little") >> 1
        self.rng = random.Random(seed)
        self.scores: dict[str, float] = {}
        self.candidates: list[Candidate] = []
        self.live: list[Beam] = []  # the beams of the running cycle, for a best-so-far answer
        self.settled = ""
        self.started = time.perf_counter()
        granularity = "token" if self.policy.supports_continuation else "response"
        self.trace = Trace(
            method=config.method,
            config=config.to_dict(),
            policy=component_name(self.policy),
            reward=component_name(search.reward),
            mutator=component_name(search.mutator) if config.mutates else None,
            granularity=granularity,
            prompt=prompt.to_dict(),
            seed=seed,
        )
        self.trace.notes.extend(getattr(self.policy, "notes", ()))  # what the policy found out about its backend
        if granularity == "response" and config.replaces:
            self.trace.notes.append(
                f"{self.trace.policy} cannot continue a partial response, so every beam is a whole response and no "
                "replacement can happen: the search runs at response granularity"
            )

    # -- the algorithm -------------------------------------------------------------------------------------------

    def steps(self) -> Generator[Any, Any, None]:
        config = self.config
        self._emit("search_started", method=config.method, beams=config.beams, cycles=config.cycles)
        try:
            if self.drafts:
                rewards = yield from self._score(self.drafts)
                self.trace.drafts = [Candidate(d, r, "draft", self.prompt.request) for d, r in zip(self.drafts, rewards)]
                self.candidates += self.trace.drafts
                self._check_threshold()
            archive = Archive(self.prompt.request)
            seed_beam = None
            if config.method == "darwin" and config.seed_sample:
                seed_beam = self.policy.start([self.prompt], config.max_new_tokens)[0]
            for c in range(config.cycles):
                cycle_start, tokens_before, calls_before = (time.perf_counter(), self.trace.tokens_generated,
                                                            self.trace.reward_calls)
                parent = archive.pick(self.rng)
                instructions = yield from self._variants(parent.instruction)
                cycle = Cycle(c, parent.instruction, trace_reward(parent.reward), instructions,
                              archive_before=archive.to_list())
                self.trace.cycles.append(cycle)
                self._emit("cycle_started", cycle=c, parent=parent.instruction, instructions=instructions)
                beams = self.policy.start([self.prompt.with_request(i) for i in instructions], config.max_new_tokens)
                # The seed sample decodes alongside the first cycle's beams, never replaced and never ranked.
                bystanders = [seed_beam] if seed_beam is not None and c == 0 else []
                counts = [0] * len(beams)
                self.live = beams + bystanders
                while not all(b.finished for b in beams + bystanders):
                    yield from self._extend(beams + bystanders)
                    if config.replaces and not all(b.finished for b in beams):
                        beams = yield from self._replace(cycle, beams, counts)
                        self.live = beams + bystanders
                        self._settle(self.live)
                    self._check_budget()
                cycle.responses = [b.response for b in beams]
                cycle.final_rewards = yield from self._score(cycle.responses)
                cycle.top_counts = counts
                self._add_candidates(cycle, beams)
                if bystanders:
                    (reward,) = yield from self._score([seed_beam.response])
                    self.trace.seed_sample = Candidate(seed_beam.response, reward, "seed-sample", self.prompt.request)
                    self.candidates.append(self.trace.seed_sample)
                    if parent.instruction == self.prompt.request:
                        parent.reward = max(parent.reward, reward)
                if config.method == "darwin":
                    self._evolve(archive, parent, cycle)
                cycle.archive_after = archive.to_list()
                cycle.tokens_generated = self.trace.tokens_generated - tokens_before
                cycle.reward_calls = self.trace.reward_calls - calls_before
                cycle.seconds = time.perf_counter() - cycle_start
                self._emit("archive_updated", cycle=c, before=cycle.archive_before, after=cycle.archive_after)
                self._check_threshold()
                self.live = []
        except _Stop as stop:
            self.trace.stopped = stop.reason
            self.trace.notes.append(f"stopped early: {stop.reason}")
            self._keep_finished(stop.reason)

    def _variants(self, parent: str) -> Generator[Any, Any, list[str]]:
        """One instruction per beam slot: mutants of the parent, or the parent itself for the non-mutating methods."""
        config = self.config
        if config.mutates:
            raw = yield _Mutate(parent, config.mutants, self._seed())
            variants = self._checked_mutants(raw, parent)
        else:
            variants = [parent] * config.mutants if config.method != "sample" else [parent]
        return [v for v in variants for _ in range(config.beams_per_mutant if config.method != "sample" else 1)]

    def _extend(self, beams: list[Beam]) -> Generator[Any, Any, None]:
        config = self.config
        live = [b for b in beams if not b.finished]
        done = max(b.tokens for b in live)
        remaining = config.max_new_tokens - done
        period = config.replacement_period if config.replaces and self.policy.supports_continuation else remaining
        usage = yield _Extend(live, min(period, remaining), self._seed())
        self._count(usage)
        for b in live:
            if b.tokens >= config.max_new_tokens or not self.policy.supports_continuation:
                b.finished = True

    def _replace(self, cycle: Cycle, beams: list[Beam], counts: list[int]) -> Generator[Any, Any, list[Beam]]:
        """Score every beam; each unfinished beam outside the top-k adopts a random top-k beam's response."""
        config, started = self.config, time.perf_counter()
        rewards = yield from self._score_for_ranking(beams)
        order = sorted(range(len(beams)), key=lambda i: -rewards[i])  # stable: ties keep slot order
        top = order[: config.keep_top]
        for i in top:
            counts[i] += 1
        replacements = []
        for i, beam in enumerate(beams):
            if i not in top and not beam.finished:
                donor = self.rng.choice(top)
                beams[i] = self.policy.adopt(beam, beams[donor])
                replacements.append((i, donor))
        period = Period(len(cycle.periods), max(b.tokens for b in beams), rewards, top, replacements,
                        [b.finished for b in beams], time.perf_counter() - started)
        cycle.periods.append(period)
        self._emit("period_scored", cycle=cycle.index, period=period.index, tokens=period.tokens, rewards=rewards, top=top)
        if replacements:
            self._emit("replacement", cycle=cycle.index, period=period.index, replacements=replacements)
        return beams

    def _score_for_ranking(self, beams: list[Beam]) -> Generator[Any, Any, list[float]]:
        """Rewards of the partial responses, after `look_ahead` throw-away tokens when look-ahead is on."""
        config = self.config
        if not config.look_ahead:
            return (yield from self._score([b.response for b in beams]))
        probes = [b if b.finished else self.policy.adopt(b, b) for b in beams]
        live = [p for p in probes if not p.finished]
        usage = yield _Extend(live, config.look_ahead, self._seed())
        self._count(usage)
        self.trace.look_ahead_tokens += usage.output_tokens
        return (yield from self._score([p.response for p in probes]))

    def _evolve(self, archive: Archive, parent: Entry, cycle: Cycle) -> None:
        """The most frequent top-k slots whose final reward beats the parent's take the parent's place."""
        slots = sorted(range(len(cycle.instructions)), key=lambda i: (-cycle.top_counts[i], -cycle.final_rewards[i]))
        winners = [Entry(cycle.instructions[i], cycle.final_rewards[i]) for i in slots[: self.config.archive_size]]
        archive.update(parent, winners)

    # -- scoring, with the cache and the checks ------------------------------------------------------------------

    def _score(self, responses: Sequence[str]) -> Generator[Any, Any, list[float]]:
        """Rewards against the original prompt; identical responses are scored once per search."""
        fresh = list(dict.fromkeys(r for r in responses if r not in self.scores))
        self.trace.reward_cache_hits += len(responses) - len(fresh)
        if fresh:
            values = yield _Score(fresh)
            self.trace.reward_calls += len(fresh)
            self.scores.update(zip(fresh, values))
        return [self.scores[r] for r in responses]

    def serve(self, request: Any, reply: Any) -> Any:
        """Check a component's reply before the algorithm sees it, and count what the component spent."""
        usage = getattr(reply, "usage", None)
        if isinstance(usage, Usage) and not isinstance(request, _Extend):
            self._count(usage)
            if isinstance(request, _Mutate):
                self.trace.mutation_tokens += usage.output_tokens
            else:
                self.trace.reward_tokens += usage.output_tokens
        if isinstance(request, _Score):
            return self._checked_rewards(reply, request.responses)
        if isinstance(request, _Extend) and not isinstance(reply, Usage):
            return Usage()
        return reply

    def _checked_rewards(self, values: Any, responses: list[str]) -> list[float]:
        name = self.trace.reward
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise RewardError(f"reward {name!r} must return one float per response; got {values!r:.200}") from exc
        if len(values) != len(responses):
            raise RewardError(f"reward {name!r} returned {len(values)} scores for {len(responses)} responses")
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise RewardError(
                    f"reward {name!r} returned {v} for response {i + 1} of {len(values)} ({responses[i][:60]!r}); "
                    "a reward must return finite floats: map failures to a low score inside the reward instead"
                )
        return values

    def _checked_mutants(self, raw: Any, parent: str) -> list[str]:
        """Exactly `mutants` usable variants; anything unusable falls back to the parent, with a warning."""
        n, name = self.config.mutants, self.trace.mutator
        variants = [v.strip() for v in raw if isinstance(v, str) and v.strip()] if isinstance(raw, (list, tuple)) else []
        if len(variants) < n:
            log.warning("mutator %r gave %d usable variants of %d; using the original instruction for the rest",
                        name, len(variants), n)
            self.trace.mutation_fallbacks += n - len(variants)
            variants += [parent] * (n - len(variants))
        return variants[:n]

    def component_error(self, request: Any, exc: Exception) -> DarwinError:
        if isinstance(request, _Score):
            return RewardError(f"reward {self.trace.reward!r} raised {type(exc).__name__}: {exc}")
        if isinstance(request, _Mutate):
            return MutationError(f"mutator {self.trace.mutator!r} raised {type(exc).__name__}: {exc}")
        return PolicyError(f"policy {self.trace.policy!r} raised {type(exc).__name__}: {exc}")

    # -- results, budgets and events -----------------------------------------------------------------------------

    def _add_candidates(self, cycle: Cycle, beams: list[Beam]) -> None:
        seen = {c.response for c in self.candidates}
        for slot, (beam, reward) in enumerate(zip(beams, cycle.final_rewards)):
            if beam.response not in seen:
                seen.add(beam.response)
                self.candidates.append(Candidate(beam.response, reward, f"cycle {cycle.index} slot {slot}",
                                                 cycle.instructions[slot]))

    def _keep_finished(self, why: str) -> None:
        """When a search ends early, the running cycle's finished and scored beams still count as candidates."""
        seen = {c.response for c in self.candidates}
        for b in self.live:
            if b.finished and b.response in self.scores and b.response not in seen:
                seen.add(b.response)
                self.candidates.append(Candidate(b.response, self.scores[b.response], f"unfinished cycle ({why})",
                                                 b.prompt.request))

    def result(self) -> SearchResult:
        pool = self.candidates
        finished = True
        if not pool:  # a budget ran out before anything finished: the best partial response so far
            finished = False
            pool = [Candidate(b.response, self.scores.get(b.response, -math.inf), "partial", b.prompt.request, False)
                    for b in self.live]
        if not pool:
            raise DarwinError("the search stopped before decoding anything; raise time_budget")
        best = max(pool, key=lambda c: c.reward)
        self.trace.notes.extend(n for n in getattr(self.policy, "notes", ()) if n not in self.trace.notes)
        self.trace.answer_source = best.source
        self.trace.seconds = time.perf_counter() - self.started
        self._emit("search_finished", reward=best.reward, source=best.source, seconds=self.trace.seconds)
        return SearchResult(best.response, best.reward, self.trace, finished)

    def attach_partial(self, exc: DarwinError) -> None:
        """Keep what was found before the failure on the error, so no finished work is lost."""
        if exc.partial is None and (self.candidates or self.live):
            self._keep_finished("failed")
            exc.partial = self.result()

    def _count(self, usage: Usage) -> None:
        self.trace.tokens_generated += usage.output_tokens
        self.trace.tokens_encoded += usage.input_tokens
        self.trace.policy_requests += usage.requests
        self.trace.policy_retries += usage.retries

    def _check_budget(self) -> None:
        budget = self.config.time_budget
        if budget is not None and time.perf_counter() - self.started > budget:
            raise _Stop("time_budget")
        self._check_threshold()

    def _check_threshold(self) -> None:
        threshold = self.config.reward_threshold
        if threshold is not None and any(c.reward >= threshold for c in self.candidates):
            raise _Stop("reward_threshold")

    def _seed(self) -> int:
        return self.rng.getrandbits(31)

    def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, data)

    def _settle(self, beams: list[Beam]) -> None:
        """Emit the prefix that every possible answer shares: it can no longer change (streaming commits)."""
        if self.on_event is None or len(self.trace.cycles) < self.config.cycles:
            return  # a later cycle could still produce any answer
        texts = [b.response for b in beams] + [c.response for c in self.candidates]
        prefix = os.path.commonprefix(texts)
        cut = max(prefix.rfind(" "), prefix.rfind("\n")) + 1  # whole words only: the next token may merge
        if cut > len(self.settled):
            self.settled = prefix[:cut]
            self._emit("settled", text=self.settled)

