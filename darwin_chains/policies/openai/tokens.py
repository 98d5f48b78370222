"""Token counting: the server's `usage` where it sends one, else the tokenizer, else about 4 characters a token."""
from __future__ import annotations

from typing import Any


def server_counts(usage: Any) -> tuple[int, int]:
    """(prompt tokens, completion tokens) from a reply's `usage`; zeros when the server sent none."""
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def count(tokenizer: Any, text: str) -> int:
    """Tokens in `text`: exact with the model's tokenizer, an estimate without one."""
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return (len(text) + 3) // 4
