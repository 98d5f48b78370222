"""Darwin (Algorithm 1 of Hung et al. 2024, arXiv 2406.15193) and its baselines, as a generator of requests.

The algorithm never calls a component: it yields a request (`requests.py`) and receives the reply, so the
driver (`driver.py`) can serve it with sync calls or with awaits and the two paths cannot drift apart.

Darwin, per mutation cycle:
  1. pick a parent instruction uniformly from the archive and mutate it into `mutants` variants;
  2. decode one beam per variant (`beams_per_mutant` each) in lock-step, `replacement_period` (m) tokens at a
     time; after every period score all partial responses against the ORIGINAL instruction and let every
     unfinished beam outside the top `keep_top` (k) adopt the response of a random top-k beam, keeping its own
     instruction; finished beams are never replaced;
  3. count how often each beam slot was in the top-k;
  4. the most frequent winners (`archive_size`) whose final reward beats the parent's take its place.
The answer is the highest-reward finished response over all cycles, the plain seed sample and any drafts.
A streamed search (`stream_commit`) commits to the leader at its last cycle's first scoring round: from then on
only the top beam survives each round and the other candidates retire, so the answer's text settles as it grows.

The baselines reuse the same loop: Best-of-N and plain sampling decode the original instruction with no
replacement, mutation + Best-of-N decodes variants with no replacement, sampling + replacement replaces
without mutating.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Generator
from typing import Any

from ..config import SearchConfig
from ..prompt import Prompt
from ..protocols import Beam
from ..trace import Candidate, Cycle, Period, Trace
from .archive import Archive, Entry, trace_reward
from .requests import Adopt, Checkpoint, Extend, Mutate, Request, Score, Start, Together
from .stops import hold_back

Steps = Generator[Request, Any, None]


class Stop(Exception):
    """A budget ran out: the search ends with what it has."""

    def __init__(self, reason: str):
        self.reason = reason


class Darwin:
    """One search's algorithm state: its candidates, its archive, the beams of the running cycle, and the record
    of its cycles in the trace.

    `continues`: whether the policy can continue a partial response; `emit` reports progress events. The driver
    reads the outcome through `answers` only.
    """

    def __init__(self, config: SearchConfig, prompt: Prompt, drafts: list[str], rng: random.Random, trace: Trace,
                 continues: bool, emit: Callable[..., None], commit: bool = False, mutation_waits: bool = True):
        self.config, self.prompt, self.drafts, self.rng, self.trace = config, prompt, drafts, rng, trace
        self.continues, self.emit = continues, emit
        self.commit = commit  # streamed: the last cycle commits to its leader (`stream_commit`)
        # Whether mutating takes time worth filling: the seed sample then decodes its first period meanwhile. An
        # immediate mutator (a table) has none, and that head start would only add a period of one-row steps.
        self.mutation_waits = mutation_waits
        self.candidates: list[Candidate] = []
        self.live: list[Beam] = []  # the beams of the running cycle, for a best-so-far answer
        self.rewards: dict[str, float] = {}  # every reward this search was told, by response

    def answers(self, why: str | None = None) -> list[Candidate]:
        """The candidates the answer is picked from. `why` the search ended mid-cycle: the running cycle's finished,
        scored beams count too, and when nothing has finished at all, the partial responses stand in ("partial")."""
        if why:
            self._keep_finished(why)
        if self.candidates:
            return list(self.candidates)
        return [Candidate(b.response, self.rewards.get(b.response, -math.inf), "partial", b.prompt.request, "length")
                for b in self.live]

    def steps(self) -> Steps:
        config = self.config
        try:
            if self.drafts:
                rewards = yield from self._score(self.drafts)
                self.trace.drafts = [Candidate(d, r, "draft", self.prompt.request) for d, r in zip(self.drafts, rewards)]
                self.candidates += self.trace.drafts
                yield from self._checkpoint(timed=False)
            archive = Archive(self.prompt.request)
            seed_beam = None
            if config.evolves and config.seed_sample:
                seed_beam = (yield Start([self.prompt], config.max_new_tokens))[0]
            for c in range(config.mutation_cycles_used):
                cycle_start, tokens_before, calls_before = (time.perf_counter(), self.trace.tokens_generated,
                                                            self.trace.reward_calls)
                parent = archive.pick(self.rng)
                # The seed sample needs no variant: it decodes while the mutator writes them.
                beside = [seed_beam] if seed_beam is not None and c == 0 and self.mutation_waits else []
                instructions = yield from self._variants(parent.instruction, beside)
                cycle = Cycle(c, parent.instruction, trace_reward(parent.reward), instructions,
                              archive_before=archive.to_list())
                self.trace.cycles.append(cycle)
                self.emit("cycle_started", cycle=c, parent=parent.instruction, instructions=instructions)
                beams = yield Start([self.prompt.with_request(i) for i in instructions], config.max_new_tokens)
                # The seed sample decodes alongside the first cycle's beams, never replaced and never ranked.
                bystanders = [seed_beam] if seed_beam is not None and c == 0 else []
                counts = [0] * len(beams)
                self.live = beams + bystanders
                commit = self.commit and c == config.mutation_cycles_used - 1 and config.replaces and self.continues
                while not all(b.finished for b in beams + bystanders):
                    yield from self._extend(beams, bystanders)
                    yield from self._checkpoint()  # out of time mid-period: stop before scoring it
                    settle = None
                    if config.replaces and not all(b.finished for b in beams):
                        beams = yield from self._replace(cycle, beams, counts, commit)
                        if commit:
                            bystanders = self._retire(cycle, bystanders)
                        self.live = settle = beams + bystanders
                    yield from self._checkpoint(self._settled(settle) if settle is not None else None)
                cycle.responses = [b.response for b in beams]
                cycle.final_rewards = yield from self._score(cycle.responses)
                cycle.top_counts = counts
                self._add_candidates(cycle, beams)
                if bystanders:
                    (reward,) = yield from self._score([seed_beam.response])
                    self.trace.seed_sample = Candidate(seed_beam.response, reward, "seed-sample", self.prompt.request,
                                                       seed_beam.finish_reason)
                    self.candidates.append(self.trace.seed_sample)
                    if parent.instruction == self.prompt.request:
                        parent.reward = max(parent.reward, reward)
                if config.evolves:
                    self._evolve(archive, parent, cycle)
                cycle.archive_after = archive.to_list()
                cycle.tokens_generated = self.trace.tokens_generated - tokens_before
                cycle.reward_calls = self.trace.reward_calls - calls_before
                cycle.seconds = time.perf_counter() - cycle_start
                self.emit("archive_updated", cycle=c, before=cycle.archive_before, after=cycle.archive_after)
                yield from self._checkpoint(timed=False)
                self.live = []
        except Stop as stop:
            self.trace.stopped = stop.reason
            self.trace.notes.append(f"stopped early: {stop.reason}")
            # One last scoring, past the budget: finished work is never dropped for want of a reward.
            if unscored := self._unscored():
                yield from self._score(unscored)
            self._keep_finished(stop.reason)

    def _variants(self, parent: str, beside: list[Beam]) -> Generator[Request, Any, list[str]]:
        """One instruction per beam slot: mutants of the parent, or the parent itself for the non-mutating methods.
        `beside` (the seed sample) decodes a period meanwhile."""
        config = self.config
        if not config.mutates:
            return [parent] * config.beams
        variants_of = Mutate(parent, config.mutants, self._seed())
        if beside:
            variants, _ = yield Together([variants_of, self._period(beside)])
            self._mark_finished(beside)
        else:
            variants = yield variants_of
        return [v for v in variants for _ in range(config.beams_per_mutant)]

    def _extend(self, beams: list[Beam], bystanders: list[Beam] = ()) -> Generator[Request, Any, None]:
        """A period for the live beams; bystanders (the seed sample) decode theirs alongside, by their own count."""
        groups = [g for g in ([b for b in beams if not b.finished], [b for b in bystanders if not b.finished]) if g]
        requests = [self._period(g) for g in groups]
        yield requests[0] if len(requests) == 1 else Together(requests)
        for group in groups:
            self._mark_finished(group)

    def _period(self, live: list[Beam]) -> Extend:
        config = self.config
        remaining = config.max_new_tokens - max(b.tokens for b in live)
        period = config.replacement_period if config.replaces and self.continues else remaining
        return Extend(live, min(period, remaining), self._seed())

    def _mark_finished(self, live: list[Beam]) -> None:
        """End the beams that reached `max_new_tokens` ("length"); a beam the policy ended stopped by itself."""
        for b in live:
            if not b.finished and (b.tokens >= self.config.max_new_tokens or not self.continues):
                b.finished, b.finish_reason = True, "length" if b.tokens >= self.config.max_new_tokens else "stop"
            if b.finished and b.finish_reason is None:
                b.finish_reason = "stop"

    def _replace(self, cycle: Cycle, beams: list[Beam], counts: list[int], commit: bool = False
                 ) -> Generator[Request, Any, list[Beam]]:
        """Score every beam; each unfinished beam outside the top-k adopts a random top-k beam's response.
        Committed (a streamed last cycle), only the leader survives, and finished beams adopt its response too."""
        config, started = self.config, time.perf_counter()
        rewards = yield from self._score_for_ranking(beams)
        order = sorted(range(len(beams)), key=lambda i: -rewards[i])  # stable: ties keep slot order
        top = order[: 1 if commit else config.keep_top_used]
        for i in top:
            counts[i] += 1
        replacements = [(i, self.rng.choice(top)) for i, b in enumerate(beams)
                        if i not in top and (commit or not b.finished)]
        if replacements:
            adopted = yield Adopt([(beams[i], beams[donor]) for i, donor in replacements])
            for (i, _), beam in zip(replacements, adopted):
                beams[i] = beam
        period = Period(len(cycle.periods), max(b.tokens for b in beams), rewards, top, replacements,
                        [b.finished for b in beams], time.perf_counter() - started)
        cycle.periods.append(period)
        self.emit("period_scored", cycle=cycle.index, period=period.index, tokens=period.tokens, rewards=rewards, top=top)
        if replacements:
            self.emit("replacement", cycle=cycle.index, period=period.index, replacements=replacements)
        return beams

    def _retire(self, cycle: Cycle, bystanders: list[Beam]) -> list[Beam]:
        """A committed search answers with the leader's line only: the seed sample stops, and drafts and earlier
        cycles' answers leave the candidates (they stay in the trace)."""
        retired = [c.source for c in self.candidates] + ["seed sample" for _ in bystanders]
        if retired:
            self.trace.notes.append(f"streamed: committed to the leading beam at period {len(cycle.periods) - 1} "
                                    f"of cycle {cycle.index}; retired {', '.join(retired)} (stream_commit)")
        for beam in bystanders:
            self.trace.seed_sample = Candidate(beam.response, self.rewards.get(beam.response, -math.inf),
                                               "seed-sample, retired by the streaming commit", self.prompt.request,
                                               "retired")
        self.candidates = []
        return []

    def _score_for_ranking(self, beams: list[Beam]) -> Generator[Request, Any, list[float]]:
        """Rewards of the partial responses, after `look_ahead` throw-away tokens when look-ahead is on."""
        if not self.config.look_ahead:
            return (yield from self._score([b.response for b in beams]))
        copies = iter((yield Adopt([(b, b) for b in beams if not b.finished])))
        probes = [b if b.finished else next(copies) for b in beams]
        yield Extend([p for p in probes if not p.finished], self.config.look_ahead, self._seed(), look_ahead=True)
        return (yield from self._score([p.response for p in probes]))

    def _evolve(self, archive: Archive, parent: Entry, cycle: Cycle) -> None:
        """The most frequent top-k slots whose final reward beats the parent's take the parent's place."""
        slots = sorted(range(len(cycle.instructions)), key=lambda i: (-cycle.top_counts[i], -cycle.final_rewards[i]))
        winners = [Entry(cycle.instructions[i], cycle.final_rewards[i]) for i in slots[: self.config.archive_size]]
        archive.update(parent, winners)

    def _add_candidates(self, cycle: Cycle, beams: list[Beam]) -> None:
        seen = {c.response for c in self.candidates}
        for slot, (beam, reward) in enumerate(zip(beams, cycle.final_rewards)):
            if beam.response not in seen:
                seen.add(beam.response)
                self.candidates.append(Candidate(beam.response, reward, f"cycle {cycle.index} slot {slot}",
                                                 cycle.instructions[slot], beam.finish_reason))

    def _unscored(self) -> list[str]:
        """What a stopped search has yet to score: its finished beams (the seed sample too), or, when nothing has
        finished at all, its partial responses, so the best of them has a finite reward."""
        finished = [b.response for b in self.live if b.finished]
        pool = finished if finished or self.candidates else [b.response for b in self.live if b.response]
        return list(dict.fromkeys(r for r in pool if r not in self.rewards))

    def _keep_finished(self, why: str) -> None:
        """When a search ends early, the running cycle's finished and scored beams still count as candidates."""
        seen = {c.response for c in self.candidates}
        for b in self.live:
            if b.finished and b.response in self.rewards and b.response not in seen:
                seen.add(b.response)
                self.candidates.append(Candidate(b.response, self.rewards[b.response], f"unfinished cycle ({why})",
                                                 b.prompt.request, b.finish_reason))

    def _score(self, responses: list[str]) -> Generator[Request, Any, list[float]]:
        rewards = yield Score(responses)
        self.rewards.update(zip(responses, rewards))
        return rewards

    def _settled(self, beams: list[Beam]) -> list[str] | None:
        """In the last cycle, the texts every possible answer starts with: the beams' responses (an unfinished
        beam's tail held back while it may be the start of a stop sequence) and the candidates'. Before it, None:
        a later cycle could still produce any answer."""
        if len(self.trace.cycles) < self.config.mutation_cycles_used:
            return None
        stop = self.config.stop
        return ([b.response if b.finished or not stop else hold_back(b.response, stop) for b in beams]
                + [c.response for c in self.candidates])

    def _checkpoint(self, settle: list[str] | None = None, timed: bool = True) -> Generator[Request, Any, None]:
        best = max((c.reward for c in self.candidates), default=-math.inf)
        reason = yield Checkpoint(best, settle, timed)
        if reason:
            raise Stop(reason)

    def _seed(self) -> int:
        return self.rng.getrandbits(31)
