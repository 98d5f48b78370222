"""Linear layers for a decoding step's few rows, computed weight-first on CPU.

A decoding step multiplies a handful of rows (one a beam) by every weight matrix. In float32 on CPU, PyTorch's
`x @ Wᵀ` for 1 to 8 rows runs far below the memory bandwidth that reading the weights needs: one row goes to a
matrix-vector kernel, and 2 to 8 rows to a kernel that does not split the work well. The same product computed
weight-first, `(W @ xᵀ)ᵀ`, reads the weights once at full speed. Measured over SmolLM2-135M's 211 weight matrices
(AMD EPYC, 2 threads, MKL's AVX512 and AVX2 code paths alike): 2 rows 16 ms against 54-58, 4 rows 17-19 against
54, 6 rows 31-38 against 52-57; one row, fed twice, 17 ms against 34 (`benchmarks/speed/README.md`).

The rounding of a row's numbers then depends on how many rows share the product, so this is for the engine's
batched mode only (`few_row_products`, thread-local: a user's own `generate` on the same model is untouched);
batch invariant, the engine keeps the usual products, padded to `attention.MIN_ROWS`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from types import MethodType
from typing import Any, Iterator

FEW_ROWS = 8  # up to this many rows the weight-first product is faster; beyond it the two are about even
_local = threading.local()


@contextmanager
def few_row_products(on: bool = True) -> Iterator[None]:
    """Within this block, on this thread, the switched models' float32 linear layers take few rows weight-first."""
    before = getattr(_local, "on", False)
    _local.on = on
    try:
        yield
    finally:
        _local.on = before


def use_few_row_products(model: Any) -> None:
    """Switch every float32 `nn.Linear` of `model` to the weight-first product inside `few_row_products`; outside
    it (and for anything else) the layer computes as before."""
    import torch

    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32 and "forward" not in vars(module):
            module.forward = MethodType(_forward, module)


def _forward(self: Any, x: Any) -> Any:
    import torch

    rows = x.numel() // self.in_features if x.dim() else 0
    usual = not getattr(_local, "on", False) or not 0 < rows <= FEW_ROWS
    if usual or x.dtype != torch.float32 or x.device.type != "cpu":
        return torch.nn.functional.linear(x, self.weight, self.bias)
    flat = x.reshape(rows, self.in_features)
    if rows == 1:  # a lone row goes to the slow matrix-vector kernel; as two it takes the fast one
        flat = flat.repeat(2, 1)
    # Laid out row-major again: attention's fused kernel takes only a unit stride along the head's features.
    out = (self.weight @ flat.t()).t()[:rows].contiguous()
    if self.bias is not None:
        out = out + self.bias
    return out.reshape(*x.shape[:-1], self.out_features)
