"""`darwin-chains serve`: Darwin behind an OpenAI-compatible HTTP API (`app.py`)."""
from .app import IGNORED, MAPPED, completion, create_app, parse_request, run

__all__ = ["IGNORED", "MAPPED", "completion", "create_app", "parse_request", "run"]
