"""An OpenAI-compatible server (vLLM, TGI, `transformers serve`, OpenAI itself) as a Darwin policy.

Darwin replaces beams every `m` tokens, so the policy must continue a partial response. Three ways to ask a server,
best first:

- "completions": the prompt is chat-templated here with the model's tokenizer, the partial response is appended as
  the model wrote it, and the completions endpoint continues it by `m` tokens. Any server with /v1/completions.
- "chat-continue": chat completions with the partial response as a final assistant message and
  `continue_final_message` (vLLM's extension). Detected with a one-token probe; a 400/422 means unsupported.
- "chat": plain chat completions. Nothing can be continued, so `supports_continuation` is False and the search
  runs at response granularity: every beam is one whole answer and no replacement happens (the trace says so).

Requests run concurrently (at most `max_concurrency` in flight), beams that share a prompt and have no response yet
share one request with `n` choices where the server honours `n`, every request carries its own seed, and token
counts come from the server's `usage`. Retries and timeouts follow one `RetryPolicy`.

One module per job: `modes.py` negotiates the mode, `transport.py` builds and sends requests and reads replies,
`tokens.py` counts tokens, and `policy.py` holds `OpenAIPolicy`, which puts them together.
"""
from ...protocols import Reply
from .policy import MODES, Mode, OpenAIPolicy

__all__ = ["MODES", "Mode", "OpenAIPolicy", "Reply"]
