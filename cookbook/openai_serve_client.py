"""Darwin as an OpenAI-compatible server: start `darwin-chains serve`, then ask it with the `openai` client and
with LangChain's `ChatOpenAI`, as any application would.

The server runs the embedded SmolLM2 with the template mutator and the default reward. Search parameters travel
per request in an extra `darwin` object; the reply carries the reward and a compact trace beside the answer.

    python cookbook/openai_serve_client.py
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import time

import openai
from langchain_openai import ChatOpenAI
from openai_remote import free_port, served  # the sibling script's server helpers


def main() -> None:
    port = free_port()
    command = [sys.executable, "-m", "darwin_chains.cli", "serve", "--port", str(port), "--mutants", "3",
               "--keep-top", "1", "--replacement-period", "8", "--max-new-tokens", "24", "--no-seed-sample"]
    with served(command, port) as url:
        client = openai.OpenAI(base_url=url, api_key="unused")
        print("models:", [m.id for m in client.models.list().data])
        started = time.perf_counter()
        reply = client.chat.completions.create(
            model="darwin", messages=[{"role": "user", "content": "Give three tips for writing a clear email."}],
            max_tokens=24, seed=1, extra_body={"darwin": {"mutants": 3, "replacement_period": 8}})
        darwin = reply.model_extra["darwin"]
        print(f"A: {reply.choices[0].message.content.strip()}")
        print(f"reward {darwin['reward']:.3f}, {darwin['trace']['replacements']} replacements, "
              f"{reply.usage.completion_tokens} tokens generated, {time.perf_counter() - started:.1f} s")

        try:
            client.chat.completions.create(model="darwin", messages=[{"role": "user", "content": "Hi"}],
                                           extra_body={"darwin": {"mutantz": 3}})
        except openai.BadRequestError as exc:
            print("bad parameter ->", exc.status_code, exc.response.json()["error"]["message"][:60])

        llm = ChatOpenAI(base_url=url, api_key="unused", model="darwin", max_tokens=16)
        print("ChatOpenAI:", llm.invoke("Name two colours of the sky.").content.strip())


if __name__ == "__main__":
    main()
