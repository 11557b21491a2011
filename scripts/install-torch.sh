#!/usr/bin/env bash
# Installs torch into the environment of $PYTHON before the project, so that pip never
# resolves `torch` from PyPI to its multi-GB CUDA build on a machine without CUDA.
#
#   without nvidia-smi: torch from PyTorch's CPU wheel index ($TORCH_INDEX_URL) when it
#                       answers within the timeout; where it cannot be reached, pip's own
#                       configuration (indexes, --find-links) instead
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
# Whether the CPU index answers at all: only an index that cannot be reached is replaced by
# pip's own configuration. A reachable index that fails mid-download is an error, never a
# silent fall back to PyPI's CUDA build.
if "$PYTHON" - "$TORCH_INDEX_URL" "$TORCH_INDEX_TIMEOUT" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=float(sys.argv[2])).close()
PY
  echo "install-torch: no CUDA (no nvidia-smi); installing $TORCH_SPEC, CPU build, from $TORCH_INDEX_URL"
  # --index-url replaces PyPI; indexes and links of pip's own configuration still apply.
  exec "${pip[@]}" --timeout "$TORCH_INDEX_TIMEOUT" --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
fi
echo "install-torch: no CUDA (no nvidia-smi) and $TORCH_INDEX_URL cannot be reached; installing $TORCH_SPEC from pip's configured sources"
exec "${pip[@]}" "$TORCH_SPEC"
