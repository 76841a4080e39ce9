#!/usr/bin/env bash
# Install foundation (editable) into the current Python environment without ever replacing torch.
# Usage: scripts/install.sh [EXTRAS]      e.g. scripts/install.sh dev
# Every pip step runs with PIP_CONSTRAINT pinning torch: the torch already installed (a CUDA build on
# a GPU cluster is kept as it is), or the CPU build 2.13.0 when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
extras=${1:-}
mkdir -p .cache
constraints=.cache/constraints.txt
if installed=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
  echo "torch==${installed}" > "$constraints"
else
  echo "torch==2.13.0" > "$constraints"
fi
export PIP_CONSTRAINT="$PWD/$constraints"
echo "install: pinning $(cat "$constraints") (PIP_CONSTRAINT=$PIP_CONSTRAINT)"
# Remove a distribution named "foundation" (this project installed under another name), so that only
# foundation-mlip provides the `foundation` package.
if "$PY" -m pip show -q foundation >/dev/null 2>&1; then "$PY" -m pip uninstall -q -y foundation; fi
target="."
[ -n "$extras" ] && target=".[${extras}]"
"$PY" -m pip install -q -e "$target"
"$PY" -c 'import torch, foundation; print(f"install: torch {torch.__version__}, foundation {foundation.__version__}")'
