"""A small OpenAI-compatible chat server on loopback, with scripted answers and a configurable delay.

It behaves like `transformers serve` where the tests need it to: it refuses `continue_final_message` with a 422
and answers one choice whatever `n` asks for. It answers an LLM mutator's request with rewrites of the
instruction it names (one a duplicate, one too short), and anything else with a short fixed reply. Each POST
waits `delay` seconds first: a slow server, on its own threads, so only the client can block.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = "Cats purr when they are content."


def rewrites(instruction: str) -> str:
    return (f"1. {instruction}, please\n2. Explain this: {instruction}\n3. {instruction}, please\n"
            f"4. {instruction.split()[-1]}")


class ScriptedServer:
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.bodies: list[dict] = []  # every POST body, in arrival order
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                time.sleep(server.delay)
                if body.get("continue_final_message"):
                    self._send(422, {"detail": "Unexpected fields: continue_final_message"})
                    return
                asked = body["messages"][-1]["content"]
                named = re.search(r"Instruction: (.*)$", asked, re.S)
                text = rewrites(named.group(1).strip()) if asked.startswith("Rewrite the instruction") else ANSWER
                self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(asked.split()), "completion_tokens": len(text.split()),
                              "total_tokens": len(asked.split()) + len(text.split())},
                })

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def probes(self) -> int:
        return sum(1 for b in self.bodies if b.get("continue_final_message"))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
