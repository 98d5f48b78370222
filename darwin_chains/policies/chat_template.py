"""Client-side chat templates for remote completions, and the check that a template keeps a partial answer intact.

A remote completions endpoint continues raw text, so the prompt is templated here, with the model's own
tokenizer, and the partial response is appended as the model wrote it. Some templates rewrite the final
assistant message when they render it (reasoning templates strip or insert `<think>` blocks): a server that
continues a chat's final message through such a template would continue different text from the one scored.
`rewrites` finds that out before a search starts.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A partial answer with a reasoning block in it, as a reasoning model would write it.
PROBE_ANSWER = "<think>\nprobe reasoning\n</think>\n\nprobe answer, cut off mid"
_PROBE_CHAT = [{"role": "user", "content": "probe question"}]


def render(tokenizer: Any, messages: Sequence[dict], template: str | None = None) -> str:
    """The conversation as text, ready for the assistant's reply (add_generation_prompt=True)."""
    return tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=False,
                                         chat_template=template)


def rewrites(tokenizer: Any, template: str | None = None) -> str | None:
    """None when rendering a final assistant message keeps it verbatim after the generation prompt; otherwise
    what the template does to it, in words."""
    head = render(tokenizer, _PROBE_CHAT, template)
    full = tokenizer.apply_chat_template(_PROBE_CHAT + [{"role": "assistant", "content": PROBE_ANSWER}],
                                         add_generation_prompt=False, tokenize=False, chat_template=template)
    if full.startswith(head + PROBE_ANSWER):
        return None
    if PROBE_ANSWER not in full:
        if "probe answer" in full and "probe reasoning" not in full:
            return "strips <think>...</think> blocks from the final assistant message"
        return "rewrites the final assistant message (its text does not survive rendering verbatim)"
    return "renders the assistant turn differently from its generation prompt (it inserts or drops text before it)"
