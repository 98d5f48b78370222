"""Policies: a local Hugging Face model (`hf`) or an OpenAI-compatible server (`openai`).

Adapters for other frameworks (a LangChain chat model as a policy) live in `integrations/`.
"""
from __future__ import annotations

from ..config import Sampling
from ..prompt import Prompt, PromptLike
from ..protocols import Policy, Reported, Usage, aextend, astart


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
