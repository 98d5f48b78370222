"""The three swappable components: Policy, Mutator and Reward, and the optional capabilities they may declare.

Each is a small `typing.Protocol`. The optional forms are protocols too (`AsyncPolicy`, `AsyncReward`,
`AsyncMutator`, `Asking`), so a component says what it can do by having the methods, and callers ask with
`isinstance`. Plain callables are valid rewards and mutators (see `as_reward` and `as_mutator`), and a component
without an async method runs its sync one in a worker thread.

What a call found out travels back in its result, never in attributes of a shared component: `Usage.notes` for
what a policy learnt about its backend, `Reported.rejected` for what a mutator refused, `Reported.replies` for what
a judge said. Concurrent searches over one component therefore keep their own.
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .config import Sampling
from .errors import ConfigError
from .prompt import Prompt, PromptLike


@dataclass
class Beam:
    """One partial response being decoded from one (possibly mutated) prompt.

    `state` belongs to the policy that made the beam (token ids and KV cache for a local model); the search only
    reads `prompt`, `response`, `tokens` and `finished`. A policy that ends a beam may say why in `finish_reason`
    ("length" when a limit of its own cut it, such as the context window); the search takes "stop" otherwise,
    and sets "length" itself when a beam reaches `max_new_tokens`.
    """

    prompt: Prompt
    response: str = ""
    tokens: int = 0
    finished: bool = False
    state: Any = field(default=None, repr=False)
    finish_reason: str | None = None


@dataclass
class Usage:
    """Tokens a policy call read (prompt and adopted responses it had to encode) and wrote, and what it found out.

    `notes` are facts about the backend that the trace should show, in words (the server cannot continue a
    response, it ignores `n`, ...); the search adds them to the trace of the search that made the call.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    retries: int = 0
    notes: list[str] = field(default_factory=list)

    def __iadd__(self, other: Usage) -> Usage:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.requests += other.requests
        self.retries += other.retries
        self.notes.extend(n for n in other.notes if n not in self.notes)
        return self


class Reported(list):
    """A component's list result (beams, variants, scores) with what the call spent and found out.

    `rejected` holds (candidate, why) for what a mutator refused; `replies` the raw text a judge's scores were
    read from. Both end up in the trace of the search that asked.
    """

    def __init__(self, items=(), usage: Usage | None = None, *, rejected: Sequence[tuple[str, str]] = (),
                 replies: Sequence[str] = ()):
        super().__init__(items)
        self.usage = usage or Usage()
        self.rejected = list(rejected)
        self.replies = list(replies)


@dataclass
class Reply:
    """One answer to a one-off question (`Asking.ask`): its text, why it ended, and top log-probabilities per
    token where the backend sent them."""

    text: str
    finish_reason: str | None
    top_logprobs: list[dict[str, float]] | None = None
    token_ids: list[int] | None = None  # the tokens written, where the server returns them (vLLM's return_token_ids)


#: The running search's session key: one per search, the same for every call it makes, so a remote policy can send
#: it (`X-Session-ID`) and a router can keep the search's requests on the replica that caches its prefix. The
#: driver sets it around each search; None outside one.
SEARCH_SESSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("darwin_search_session", default=None)


@runtime_checkable
class Policy(Protocol):
    """Turns prompts into beams and extends them.

    `supports_continuation` says whether `extend` can continue a partial response a few tokens at a time; a policy
    that cannot runs the search at response granularity (every beam finishes in one call). `max_context` is the
    context window in tokens, or None when unknown.

    A policy with `supports_deadline = True` also takes `deadline=` (a `time.monotonic()` value, or None) in
    `extend` and `aextend`, and returns by then with what it decoded: the search's time budget then holds inside a
    period, not only between periods (`extend_args`).

    A policy with `supports_json_schema = True` decodes the beams of a prompt that carries a `json_schema`
    (`Prompt.constrained`) under that schema's grammar, so every answer is valid JSON for it; a policy without it
    ignores the schema, and callers that need valid JSON gate the reward instead. One that cannot carry the
    grammar's state from one call to the next (a server's grammar restarts with every request) also sets
    `continues_json_schema = False`: a constrained search then decodes each beam whole, at response granularity.
    """

    name: str
    supports_continuation: bool
    max_context: int | None

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        """New empty beams, one per prompt. Raises InputError when a prompt cannot fit the context window.

        A `Reported` list may carry `usage.notes`: what the policy found out about its backend on the way."""
        ...

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        """Add up to `max_new_tokens` tokens to every unfinished beam, in place; mark those that end."""
        ...

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        """A beam that keeps `beam`'s prompt and continues `donor`'s response."""
        ...


@runtime_checkable
class Reward(Protocol):
    """Scores responses (partial ones too) against the original prompt; higher is better."""

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]: ...


@runtime_checkable
class Mutator(Protocol):
    """Rewrites an instruction into `n` variants with the same intent (exactly `n`; fall back to the original).

    A mutator with `supports_context = True` also takes `context=` in `mutate` and `amutate`: the prompt's text
    around the request (`Prompt.context`: system messages, retrieved text, earlier turns), so that its variants
    can keep to directions the prompt gives there ("Be brief."). Others are called with the three arguments.

    A mutator with `immediate = True` answers without model or network work (a table of rewrites). Darwin's seed
    sample then starts with the beams; otherwise it decodes its first period while the mutator writes.
    """

    def mutate(self, instruction: str, n: int, seed: int) -> list[str]: ...


@runtime_checkable
class AsyncPolicy(Protocol):
    """A policy whose `extend` has an awaitable form; without one it runs in a worker thread."""

    async def aextend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage: ...


@runtime_checkable
class AsyncReward(Protocol):
    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]: ...


@runtime_checkable
class AsyncMutator(Protocol):
    async def amutate(self, instruction: str, n: int, seed: int) -> list[str]: ...


@runtime_checkable
class Asking(Protocol):
    """A policy that answers a one-off question directly, continuing `prefix` where it can and returning top
    log-probabilities: what an LLM judge wants (e.g. `OpenAIPolicy`). Other policies are asked through
    `start`/`extend`."""

    def ask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
            seed: int = 0) -> tuple[Reply, Usage]: ...

    async def aask(self, messages: Sequence[dict], *, prefix: str = "", max_tokens: int = 8, top_logprobs: int = 0,
                   seed: int = 0) -> tuple[Reply, Usage]: ...


class CallableReward:
    """A plain function as a Reward (DSPy style), called once per response in one of three shapes:

    - `fn(instruction, response)`: the final user message as written, and the response;
    - `fn(prompt, response)`: the whole `Prompt` (messages, request, `context`), when the first parameter is
      named `prompt`;
    - `fn(instruction, response, context)`: when a parameter is named `context` or three are required; `context`
      is `prompt.context`, the retrieved text of a RAG chain among it.

    The shape is read from the signature once, at construction; one that fits none is a ConfigError.

    Example:
        >>> reward = CallableReward(lambda instruction, response, context: float("7:15" in response))
        >>> reward.score(Prompt.of([("system", "Opens at 7:15."), ("user", "When?")]), ["At 7:15.", "At 9."])
        [1.0, 0.0]
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.shape = _reward_shape(fn, self.name)

    def _args(self, prompt: Prompt, response: str) -> tuple[Any, ...]:
        if self.shape == "prompt":
            return prompt, response
        if self.shape == "context":
            return prompt.instruction, response, prompt.context
        return prompt.instruction, response

    def score(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        return [self.fn(*self._args(prompt, r)) for r in responses]

    async def ascore(self, prompt: Prompt, responses: Sequence[str]) -> list[float]:
        if _is_async(self.fn):
            return list(await asyncio.gather(*(self.fn(*self._args(prompt, r)) for r in responses)))
        return await asyncio.to_thread(self.score, prompt, responses)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _reward_shape(fn: Callable[..., Any], name: str) -> str:
    """Which arguments a reward callable takes: "instruction", "prompt" or "context" (see CallableReward)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: the classic shape
        return "instruction"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = [p.name for p in positional]
    required = sum(p.default is p.empty for p in positional)
    most = 3 if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)  # how many it can take
    keyword_only = [f"*, {p.name}" for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if not keyword_only:
        if names[:1] == ["prompt"] and required <= 2 <= most:
            return "prompt"
        if ("context" in names[:3] or required == 3) and required <= 3 <= most:
            return "context"
        if required <= 2 <= most:
            return "instruction"
    raise ConfigError(
        f"reward callable {name!r} takes ({', '.join(names + keyword_only) or 'no arguments'}); a reward callable "
        "takes (instruction, response), (prompt, response) with the first parameter named `prompt`, or "
        "(instruction, response, context): change its signature, or give an object with .score(prompt, responses)")


class CallableMutator:
    """A plain function `(instruction, n) -> list[str]` (or an async one) as a Mutator; what it returns is checked
    by the search, so a string is an error rather than a list of characters."""

    def __init__(self, fn: Callable[[str, int], Sequence[str]], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def mutate(self, instruction: str, n: int, seed: int) -> Any:
        return self.fn(instruction, n)

    async def amutate(self, instruction: str, n: int, seed: int) -> Any:
        if inspect.iscoroutinefunction(self.fn):
            return await self.fn(instruction, n)
        return await asyncio.to_thread(self.fn, instruction, n)


def as_reward(obj: Any) -> Reward:
    """Accept a Reward, or a callable `(instruction, response)`, `(prompt, response)` or
    `(instruction, response, context)` -> float (see CallableReward)."""
    if isinstance(obj, Reward):
        return obj
    if callable(obj):
        return CallableReward(obj)
    raise ConfigError(f"reward must have a .score(prompt, responses) method or be a callable, got {type(obj).__name__}")


def as_mutator(obj: Any) -> Mutator:
    """Accept a Mutator, or a callable `(instruction, n) -> list[str]`."""
    if isinstance(obj, Mutator):
        return obj
    if callable(obj):
        return CallableMutator(obj)
    raise ConfigError(f"mutator must have a .mutate(instruction, n, seed) method or be a callable, got {type(obj).__name__}")


def component_name(obj: Any) -> str:
    """How errors and traces name a component."""
    return getattr(obj, "name", None) or type(obj).__name__


async def ascore(reward: Reward, prompt: Prompt, responses: Sequence[str]) -> list[float]:
    if isinstance(reward, AsyncReward):
        return await reward.ascore(prompt, responses)
    return await asyncio.to_thread(reward.score, prompt, responses)


def mutate_args(mutator: Mutator, context: str) -> dict[str, Any]:
    """The keyword arguments of `mutate` beyond the protocol's own: the context, for a mutator that takes it."""
    return {"context": context} if getattr(mutator, "supports_context", False) else {}


async def amutate(mutator: Mutator, instruction: str, n: int, seed: int, context: str = "") -> list[str]:
    extra = mutate_args(mutator, context)
    if isinstance(mutator, AsyncMutator):
        return await mutator.amutate(instruction, n, seed, **extra)
    return await asyncio.to_thread(lambda: mutator.mutate(instruction, n, seed, **extra))


def extend_args(policy: Policy, deadline: float | None) -> dict[str, Any]:
    """The keyword arguments of `extend` beyond the protocol's own: the deadline, for a policy that takes one."""
    return {"deadline": deadline} if deadline is not None and getattr(policy, "supports_deadline", False) else {}


async def aextend(policy: Policy, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int,
                  deadline: float | None = None) -> Usage:
    extra = extend_args(policy, deadline)
    if isinstance(policy, AsyncPolicy):
        return await policy.aextend(beams, max_new_tokens, sampling, seed, **extra)
    return await asyncio.to_thread(lambda: policy.extend(beams, max_new_tokens, sampling, seed, **extra))


async def astart(policy: Policy, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
    """`start` in a worker thread: a remote policy may ask its server what it supports on first use."""
    return await asyncio.to_thread(policy.start, prompts, max_new_tokens)


def complete(
    policy: Policy, prompt: PromptLike, max_new_tokens: int, sampling: Sampling | None = None, seed: int = 0
) -> tuple[str, Usage]:
    """One whole response from any policy, for components (mutators, judges) that need plain generation."""
    sampling = sampling or Sampling()
    beams = policy.start([Prompt.of(prompt)], max_new_tokens)
    usage = _started(beams)
    while not beams[0].finished and beams[0].tokens < max_new_tokens:
        usage += policy.extend(beams, max_new_tokens - beams[0].tokens, sampling, seed)
        if not policy.supports_continuation:
            break
    return beams[0].response, usage


async def acomplete(
    policy: Policy, prompt: PromptLike, max_new_tokens: int, sampling: Sampling | None = None, seed: int = 0
) -> tuple[str, Usage]:
    """`complete`, with `start` in a worker thread and `extend` awaited: the event loop stays free."""
    sampling = sampling or Sampling()
    beams = await astart(policy, [Prompt.of(prompt)], max_new_tokens)
    usage = _started(beams)
    while not beams[0].finished and beams[0].tokens < max_new_tokens:
        usage += await aextend(policy, beams, max_new_tokens - beams[0].tokens, sampling, seed)
        if not policy.supports_continuation:
            break
    return beams[0].response, usage


def _started(beams: list) -> Usage:
    """What `start` reported (a remote policy's notes about its server), as the running total."""
    usage = Usage()
    if isinstance(beams, Reported):
        usage += beams.usage
    return usage
