"""The search: Darwin's algorithm and its baselines (`algorithm.py`) as a generator of requests (`requests.py`),
served by the driver (`driver.py`), over the archive of instructions (`archive.py`)."""
from .driver import EventHandler, Search

__all__ = ["EventHandler", "Search"]
