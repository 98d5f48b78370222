"""Model plumbing that the local policy and the default reward share: per-row caches and ragged forward passes
(`batching.py`), attention over each row's own keys (`attention.py`), and linear layers on CPU through packed
weights (`products.py`). It knows no component: policies and rewards import it, never each other."""
