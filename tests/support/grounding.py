"""A scripted groundedness checker, for the searches' and the server's handling of verdicts without a model."""
from __future__ import annotations

from darwin_chains.rewards.grounding import Verdict


class Checker:
    """Grounded exactly when a response says "cat" fewer than `limit` times: the keyword reward's best answers are
    the ungrounded ones, so the search has to trade reward for groundedness."""

    def __init__(self, limit: int = 10**6, applies: bool = True):
        self.limit, self.applies_to, self.seen = limit, applies, []

    def applies(self, prompt) -> bool:
        return self.applies_to

    def verdict(self, prompt, response: str) -> Verdict:
        self.seen.append(response)
        bad = response.split().count("cat") >= self.limit
        return Verdict(not bad, 0.0 if bad else 1.0, ("cat",) if bad else (), 1)
