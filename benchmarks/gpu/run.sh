#!/usr/bin/env bash
# The CUDA check, on one GPU: random-weight SmolLM2-135M- and Llama-3-8B-shaped models (benchmarks/gpu/gpu.py).
# Run from the repository root on a machine with torch (CUDA) and transformers; nothing is downloaded. Writes
# benchmarks/gpu/runs/<gpu>-cuda.json, and a copy into $OUT when that is set. At most about 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run gpu.py --small on CPU')"
name=$(python -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
out="benchmarks/gpu/runs/${name}-cuda.json"
PYTHONPATH=. timeout 480 python benchmarks/gpu/gpu.py --out "$out"
if [ -n "${OUT:-}" ]; then cp "$out" "$OUT/"; fi
