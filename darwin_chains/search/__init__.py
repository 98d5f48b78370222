"""The search: Darwin's algorithm and its baselines (`driver.py`), and the archive of instructions (`archive.py`)."""
from .driver import EventHandler, Search

__all__ = ["EventHandler", "Search"]
