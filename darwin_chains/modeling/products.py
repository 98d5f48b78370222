"""Linear layers on CPU in float32: weights packed once for oneDNN, one or two rows weight-first.

A decoding step multiplies a handful of rows (one a beam) by every weight matrix. In float32 on CPU, PyTorch's
`x @ Wᵀ` for 1 to 16 rows runs far below the memory bandwidth that reading the weights needs: MKL's kernels for a
few rows do not split the work well, and one row goes to a matrix-vector kernel. oneDNN's kernel over weights
reordered once into its blocked layout (`torch.ops.mkldnn._reorder_linear_weight`, as `torch.compile` does for
frozen models) reads them at full speed for any row count. Over SmolLM2-135M's 211 weight matrices (AMD EPYC,
2 threads): 5 rows 19-26 ms against 38-72, 6 rows 20-25 against 39-84, 40 rows 59-78 against 82-165, 300 rows (a
prefill) 330 against 478. oneDNN's AVX2 kernels gain too (`ONEDNN_MAX_CPU_ISA=AVX2`: 5 rows 28 ms against 37).
One or two rows go weight-first, `(W @ xᵀ)ᵀ`, which streams the plain weights as fast and skips oneDNN's fixed
cost: a whole decoding step of one row took 35-36 ms against 40-42 packed, of two rows 32-34 against 46 (a lone
search's last steps, as its beams end one by one). `benchmarks/speed/README.md` has the runs.

Past the weight-first rows, the packed product gives a row the same numbers however many rows share it: each
output is reduced over the inputs in one order, whatever the rows (checked from `attention.MIN_ROWS` rows up over
SmolLM2's shapes, with AVX2 and AVX-512 kernels, on one and two threads: `tests/unit/test_products.py`). So
batch invariant callers use it too, padding every product to MIN_ROWS rows as they did for MKL's kernels: the
engine's batch invariant mode and the reward's encoder.

The packed copy costs the layers' weights again in memory, is made on a layer's first use, and is made again
when the weight changes (a new tensor, or an in-place update: PyTorch counts those). It is used only inside
`packed_products`, on that thread: a user's own `generate` on the same model is untouched.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from types import MethodType
from typing import Any, Iterator

WEIGHT_FIRST_ROWS = 2  # up to this many rows the weight-first product beats the packed one
_local = threading.local()


def available() -> bool:
    """Whether this PyTorch build has oneDNN's packed linear kernel (CPU builds for x86 and Arm do)."""
    import torch

    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")


@contextmanager
def packed_products(on: bool = True) -> Iterator[None]:
    """Within this block, on this thread, the switched models' float32 linear layers use their packed weights."""
    before = getattr(_local, "on", False)
    _local.on = on
    try:
        yield
    finally:
        _local.on = before


def use_packed_products(model: Any) -> bool:
    """Switch every float32 `nn.Linear` of `model` to packed weights inside `packed_products`; outside it (and
    for anything else) the layer computes as before. Whether it did: a float32 model on CPU, where this PyTorch
    has oneDNN's kernel (`available`)."""
    import torch

    weight = next(model.parameters(), None)
    if weight is None or weight.dtype != torch.float32 or weight.device.type != "cpu" or not available():
        return False
    for module in model.modules():
        if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32 and "forward" not in vars(module):
            module.forward = MethodType(_forward, module)
    return True


def _forward(self: Any, x: Any) -> Any:
    import torch

    weight = self.weight
    if not getattr(_local, "on", False) or x.dtype != torch.float32 or x.device.type != "cpu" or not x.numel() \
            or weight.dtype != torch.float32:
        return torch.nn.functional.linear(x, weight, self.bias)
    rows = x.numel() // self.in_features
    if rows <= WEIGHT_FIRST_ROWS:
        return _weight_first(self, x, rows)
    key = (weight.data_ptr(), weight._version)
    packed = vars(self).get("_packed")
    if packed is None or packed[0] != key:
        with torch.no_grad():
            packed = vars(self)["_packed"] = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None))
    bias = None if self.bias is None else self.bias.detach()
    return torch.ops.mkldnn._linear_pointwise(x, packed[1], bias, "none", [], "")


def _weight_first(self: Any, x: Any, rows: int) -> Any:
    flat = x.reshape(rows, self.in_features)
    if rows == 1:  # a lone row goes to the slow matrix-vector kernel; as two it takes the fast one
        flat = flat.repeat(2, 1)
    # Laid out row-major again: attention's fused kernel takes only a unit stride along the head's features.
    out = (self.weight @ flat.t()).t()[:rows].contiguous()
    if self.bias is not None:
        out = out + self.bias
    return out.reshape(*x.shape[:-1], self.out_features)
