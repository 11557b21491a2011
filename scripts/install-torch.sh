#!/usr/bin/env bash
# Installs torch into the environment of $PYTHON before the project, so that pip never
# resolves `torch` from PyPI to its multi-GB CUDA build on a machine without CUDA.
#
#   without nvidia-smi: torch from PyTorch's CPU wheel index ($TORCH_INDEX_URL), asked once
#                       with a short timeout and no retries; where that index cannot be
#                       reached, pip's own configuration (indexes, --find-links) instead
#   with nvidia-smi:    torch as pip's configuration resolves it (PyPI's CUDA build)
#
# Variables: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0), TORCH_INDEX_URL
# (default https://download.pytorch.org/whl/cpu), TORCH_INDEX_TIMEOUT (seconds, default 10).
# Further arguments go to every `pip install` (the tests pass --dry-run).
set -euo pipefail
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
TORCH_INDEX_TIMEOUT=${TORCH_INDEX_TIMEOUT:-10}
pip=("$PYTHON" -m pip install --quiet "$@")

if command -v nvidia-smi >/dev/null 2>&1; then
  echo "install-torch: nvidia-smi found; installing $TORCH_SPEC as pip resolves it (CUDA build)"
  exec "${pip[@]}" "$TORCH_SPEC"
fi
echo "install-torch: no CUDA (no nvidia-smi); installing $TORCH_SPEC, CPU build, from $TORCH_INDEX_URL"
# --index-url replaces PyPI; indexes and links of pip's own configuration still apply.
if "${pip[@]}" --timeout "$TORCH_INDEX_TIMEOUT" --retries 0 --index-url "$TORCH_INDEX_URL" \
  "$TORCH_SPEC"; then
  exit 0
fi
echo "install-torch: $TORCH_INDEX_URL did not serve $TORCH_SPEC; falling back to pip's configured sources"
exec "${pip[@]}" "$TORCH_SPEC"
