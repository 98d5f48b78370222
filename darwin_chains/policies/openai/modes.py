"""Mode negotiation: how to ask this server to continue a partial response, settled once on first use.

"tokens" when the server tokenizes chats (`/tokenize`, beside `/v1`) and returns the token ids it wrote
(`return_token_ids`), as vLLM does: every beam is its exact token ids, so a continuation never goes through text
again. Else "completions" when a tokenizer is given (the chat is templated here); else "chat-continue" when a
one-token probe with `continue_final_message` is accepted; else "chat" (no continuation). A chat template that
rewrites the final assistant message refuses chat-continue. Each finding comes back as a note for the traces, the
mode used among them.
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
    if mode == "auto" and probe_tokens(policy):
        mode = "tokens"
    rewrite = (chat_template.rewrites(policy.tokenizer, policy.chat_template)
               if policy.has_tokenizer and mode != "tokens" else None)
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
    notes.append(f"{policy.name} at {policy.base_url}: {mode} mode ({DESCRIBED[mode]})")
    return mode, notes


#: Each mode in words, for the note every trace carries.
DESCRIBED = {
    "tokens": "token-id prompts on /v1/completions; each beam continues the exact tokens the reward scored",
    "completions": "the chat templated here, each beam's text continued on /v1/completions",
    "chat-continue": "chat completions continuing the final assistant message",
    "chat": "whole chat answers, no continuation",
}


def probe_tokens(policy: OpenAIPolicy) -> bool:
    """Whether the server tokenizes a chat and returns the token ids it writes: one /tokenize, one 1-token
    completion. A server without them answers 404, 400 or 422 (or leaves the ids out)."""
    headers = policy.headers()
    try:
        tokenized = policy.tokenize({"model": policy.model, "messages": [{"role": "user", "content": "Reply with OK."}],
                                     "add_generation_prompt": True}, headers)
        ids = tokenized.get("tokens") if isinstance(tokenized, dict) else None
        if not isinstance(ids, list) or not ids:
            return False  # an answer of another shape: no tokenizer here
        reply, _ = policy.retry.call(lambda: policy.client.completions.create(
            model=policy.model, prompt=ids, max_tokens=1, temperature=0.0,
            extra_body={**policy.extra_body, "return_token_ids": True}, extra_headers=headers), policy.base_url)
    except PolicyError as exc:
        if getattr(exc, "status", None) not in (400, 404, 405, 422):
            raise
        return False
    return bool(reply.choices) and isinstance(getattr(reply.choices[0], "token_ids", None), list)


def probe_continuation(policy: OpenAIPolicy, notes: list[str]) -> str:
    """Ask for one token continuing a final assistant message; a 400/422 means the server cannot."""
    messages = [{"role": "user", "content": "Reply with OK."}, {"role": "assistant", "content": "O"}]
    try:
        policy.retry.call(lambda: policy.client.chat.completions.create(
            model=policy.model, messages=messages, max_tokens=1,
            extra_body={**policy.extra_body, "continue_final_message": True, "add_generation_prompt": False},
            extra_headers=policy.headers()), policy.base_url)
    except PolicyError as exc:
        if getattr(exc, "status", None) not in (400, 422):
            raise
        notes.append(
            f"{policy.name} at {policy.base_url} cannot continue a partial chat response (continue_final_message "
            f"answered {exc.status}), so every beam is one whole chat answer: response granularity")
        return "chat"
    return "chat-continue"
