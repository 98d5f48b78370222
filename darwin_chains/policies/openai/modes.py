"""Mode negotiation: how to ask this server to continue a partial response, settled once on first use.

"completions" when a tokenizer is given (the chat is templated here); else "chat-continue" when a one-token probe
with `continue_final_message` is accepted; else "chat" (no continuation). A chat template that rewrites the final
assistant message refuses chat-continue. Each finding comes back as a note for the traces.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ...errors import PolicyError
from .. import chat_template

if TYPE_CHECKING:
    from .policy import OpenAIPolicy

log = logging.getLogger(__name__)


def negotiate(policy: OpenAIPolicy) -> tuple[str, list[str]]:
    """The mode to use, and what was found out on the way, in words."""
    mode, notes = policy.requested_mode, []
    rewrite = chat_template.rewrites(policy.tokenizer, policy.chat_template) if policy.has_tokenizer else None
    if mode == "auto":
        mode = "completions" if policy.has_tokenizer else probe_continuation(policy, notes)
    if rewrite and mode == "completions":
        notes.append(
            f"the chat template of {policy.name} {rewrite}; completions mode renders the prompt with "
            "add_generation_prompt and appends the partial response raw, as the model wrote it, so continuation "
            "is unaffected")
    elif rewrite and mode == "chat-continue":
        mode = "chat"
        notes.append(
            f"the chat template of {policy.name} {rewrite}, so the server would continue different text from the "
            "one scored: continuation is refused and the search runs at response granularity (use "
            "mode='completions' to continue partial responses)")
    log.info("%s at %s: %s mode", policy.name, policy.base_url, mode)
    return mode, notes


def probe_continuation(policy: OpenAIPolicy, notes: list[str]) -> str:
    """Ask for one token continuing a final assistant message; a 400/422 means the server cannot."""
    messages = [{"role": "user", "content": "Reply with OK."}, {"role": "assistant", "content": "O"}]
    try:
        policy.retry.call(lambda: policy.client.chat.completions.create(
            model=policy.model, messages=messages, max_tokens=1,
            extra_body={**policy.extra_body, "continue_final_message": True, "add_generation_prompt": False}),
            policy.base_url)
    except PolicyError as exc:
        if getattr(exc, "status", None) not in (400, 422):
            raise
        notes.append(
            f"{policy.name} at {policy.base_url} cannot continue a partial chat response (continue_final_message "
            f"answered {exc.status}), so every beam is one whole chat answer: response granularity")
        return "chat"
    return "chat-continue"
