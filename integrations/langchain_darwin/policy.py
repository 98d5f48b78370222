"""Any LangChain chat model or LLM as a Darwin policy (and, through it, as the LLM mutator's model).

Darwin replaces beams every `m` tokens, so a policy must be able to continue a partial response. A chat model
cannot: it answers a conversation, and a partial answer is not a conversation. A chat model therefore runs Darwin
at response granularity: every beam is one whole answer from one `invoke` (the search notes this in its trace).
A text-completion LLM can continue a partial response, because its prompt is plain text that may end mid-answer,
provided it can be told to stop after `m` tokens (a `max_tokens`-style field); one that cannot is used at
response granularity too.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from darwin_chains import Beam, Prompt, Sampling, Usage
from langchain_core.language_models import BaseChatModel, BaseLanguageModel, BaseLLM
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import ensure_config

from ._convert import to_langchain

log = logging.getLogger(__name__)

#: Fields through which LangChain models cap the tokens of one reply, in the order they are looked for.
LIMIT_FIELDS = ("max_tokens", "max_new_tokens", "max_output_tokens", "max_completion_tokens", "num_predict")
#: Finish reasons that mean a completion ended by itself (as opposed to "length": it hit the cap).
_ENDED = {"stop", "eos", "eos_token", "end_turn", "stop_sequence", "content_filter"}


def render(messages: Sequence[Mapping[str, str]]) -> str:
    """The default text prompt for an LLM: one "Role: text" paragraph per message, then "Assistant:"."""
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"


class LangChainPolicy:
    """A LangChain chat model or LLM behind Darwin's Policy protocol.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from darwin_chains import Search
        >>> policy = LangChainPolicy(FakeListChatModel(responses=["Paris.", "It is Paris."]))
        >>> Search(policy, lambda instruction, response: len(response), method="best-of-n", mutants=2,
        ...        max_new_tokens=32).run("Capital of France?").answer
        'It is Paris.'

    Args:
        model: a `BaseChatModel` (response granularity) or a `BaseLLM` (continues partial responses when it has a
            max-tokens field).
        format_prompt: for an LLM, turns the conversation (role/content dicts) into its text prompt; give the
            model's chat template here. The default, `render`, writes "User: ...", "Assistant:" paragraphs.
        max_tokens_field: the model field that caps one reply's tokens; "auto" finds max_tokens,
            max_new_tokens, max_output_tokens, max_completion_tokens or num_predict. None: the model cannot be
            capped, so replies are as long as the model makes them and an LLM is used at response granularity.
        max_concurrency: chat model calls in flight at once (one per beam).

    The model samples with its own settings: Darwin's temperature, top_k and top_p (and seed) apply to darwin
    policies, not to a LangChain model. Token counts are the model's `usage_metadata` (chat) or finish reasons and
    `token_usage` (LLM) when it reports them; otherwise about 4 characters count as a token. An LLM that reports
    no finish reason is taken to have used its whole cap until it returns nothing more.
    """

    max_context = None  # unknown: LangChain models do not say

    def __init__(self, model: BaseLanguageModel, *, format_prompt: Callable[[list[dict]], str] | None = None,
                 max_tokens_field: str | None = "auto", max_concurrency: int = 8, name: str | None = None):
        if not isinstance(model, (BaseChatModel, BaseLLM)):
            raise TypeError(f"LangChainPolicy wraps a LangChain chat model or LLM, got {type(model).__name__}")
        self.model = model
        self.format_prompt = format_prompt or render
        fields = type(model).model_fields
        self.max_tokens_field = (next((f for f in LIMIT_FIELDS if f in fields), None)
                                 if max_tokens_field == "auto" else max_tokens_field)
        self.supports_continuation = isinstance(model, BaseLLM) and self.max_tokens_field is not None
        self.max_concurrency = max_concurrency
        self.name = name or model_name(model)

    # -- the Policy protocol -------------------------------------------------------------------------------------

    def start(self, prompts: Sequence[Prompt], max_new_tokens: int) -> list[Beam]:
        return [Beam(prompt=p, state="") for p in prompts]

    def adopt(self, beam: Beam, donor: Beam) -> Beam:
        return Beam(beam.prompt, donor.response, donor.tokens, donor.finished, donor.state)

    def extend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        live = [b for b in beams if not b.finished]
        if not live or max_new_tokens < 1:
            return Usage()
        model = self._capped(max_new_tokens)
        if isinstance(model, BaseChatModel):
            replies = model.batch([self._messages(b) for b in live], config={"max_concurrency": self.max_concurrency})
            return self._answered(live, replies)
        config = ensure_config()  # the caller's run, so the LLM's runs nest under it
        result = model.generate([self._text(b) for b in live], callbacks=config.get("callbacks"),
                                tags=config.get("tags"), metadata=config.get("metadata"))
        return self._continued(live, result, max_new_tokens)

    async def aextend(self, beams: Sequence[Beam], max_new_tokens: int, sampling: Sampling, seed: int) -> Usage:
        live = [b for b in beams if not b.finished]
        if not live or max_new_tokens < 1:
            return Usage()
        model = self._capped(max_new_tokens)
        if isinstance(model, BaseChatModel):
            replies = await model.abatch([self._messages(b) for b in live],
                                         config={"max_concurrency": self.max_concurrency})
            return self._answered(live, replies)
        config = ensure_config()
        result = await model.agenerate([self._text(b) for b in live], callbacks=config.get("callbacks"),
                                       tags=config.get("tags"), metadata=config.get("metadata"))
        return self._continued(live, result, max_new_tokens)

    # -- helpers -------------------------------------------------------------------------------------------------

    def _capped(self, max_new_tokens: int) -> BaseLanguageModel:
        if self.max_tokens_field is None:
            return self.model
        return self.model.model_copy(update={self.max_tokens_field: max_new_tokens})

    @staticmethod
    def _messages(beam: Beam) -> list[BaseMessage]:
        return to_langchain(beam.prompt.messages)

    def _text(self, beam: Beam) -> str:
        return self.format_prompt([dict(m) for m in beam.prompt.messages]) + beam.state

    @staticmethod
    def _answered(beams: list[Beam], replies: Sequence[BaseMessage]) -> Usage:
        """Chat replies: each is a whole response."""
        usage = Usage(requests=len(beams))
        for beam, reply in zip(beams, replies):
            text = str(reply.text)
            reported = getattr(reply, "usage_metadata", None) or {}
            beam.state = beam.response = text
            beam.tokens = reported.get("output_tokens") or estimate_tokens(text)
            beam.finished = True
            usage.input_tokens += reported.get("input_tokens") or 0
            usage.output_tokens += beam.tokens
        return usage

    @staticmethod
    def _continued(beams: list[Beam], result: LLMResult, max_new_tokens: int) -> Usage:
        """LLM completions: each continues its beam's text by up to `max_new_tokens` tokens."""
        usage = Usage(requests=len(beams))
        for beam, generations in zip(beams, result.generations):
            text = generations[0].text
            reason = (generations[0].generation_info or {}).get("finish_reason")
            ended = reason in _ENDED or not text.strip()
            added = min(max_new_tokens, estimate_tokens(text)) if ended else max_new_tokens
            beam.state += text
            beam.response = beam.state.lstrip()  # "Assistant:" is followed by a space the answer does not need
            beam.tokens += added
            beam.finished = ended
            usage.output_tokens += added
        reported = (result.llm_output or {}).get("token_usage") or {}
        if reported.get("completion_tokens"):
            usage.output_tokens = reported["completion_tokens"]
        usage.input_tokens = reported.get("prompt_tokens") or 0
        return usage


def model_name(model: BaseLanguageModel) -> str:
    """How traces name a LangChain model: its model name where it has one, else its type."""
    for attr in ("model_name", "model", "model_id", "repo_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type


def estimate_tokens(text: str) -> int:
    """About 4 characters a token: the usual rule of thumb when a model reports no counts."""
    return (len(text) + 3) // 4
