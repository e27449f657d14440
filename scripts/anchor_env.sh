#!/usr/bin/env bash
# Builds the benchmarks' anchor environment: a Python venv with torch 2.13 (CPU), transformers,
# TRL, PEFT, TensorBoard and Gymnasium, at .venv-anchor/ in the project (git-ignored), where every
# bench looks for it (bench/anchor.ts; $PROXIMA_TORCH_PYTHON points elsewhere). The same venv runs
# the fixture scripts under tests/fixtures/ that record reference values from transformers / TRL.
#
#   bash scripts/anchor_env.sh            # build or update .venv-anchor/
#   bash scripts/anchor_env.sh DIR        # build it at DIR instead (then PROXIMA_TORCH_PYTHON=DIR/bin/python)
#
# Packages come from this machine's local Python package index when it has one (/opt/pypi/simple
# and /opt/wheels, the image's mirror), else from PyPI with PyTorch's CPU wheel index.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-anchor}
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || { echo "anchor_env: $python not found: install Python 3.10-3.12 (apt-get install python3 python3-venv)" >&2; exit 2; }

if [ ! -x "$venv/bin/python" ]; then
  echo "anchor_env: creating $venv with $($python --version 2>&1)"
  "$python" -m venv "$venv" || { echo "anchor_env: '$python -m venv' failed: install python3-venv" >&2; exit 2; }
fi

packages="torch==2.13.0 transformers trl peft tensorboard safetensors gymnasium"
if [ -d /opt/pypi/simple ]; then
  echo "anchor_env: installing from the local package index (/opt/pypi/simple, /opt/wheels)"
  index=(--index-url file:///opt/pypi/simple)
  [ -d /opt/wheels ] && index+=(--find-links /opt/wheels)
else
  echo "anchor_env: installing from PyPI (torch from download.pytorch.org/whl/cpu)"
  index=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check "${index[@]}" $packages
"$venv/bin/python" - <<'PY'
import torch, transformers, trl, peft, tensorboard
print(f"anchor_env: torch {torch.__version__}, transformers {transformers.__version__}, "
      f"trl {trl.__version__}, peft {peft.__version__}, tensorboard {tensorboard.__version__}")
PY
echo "anchor_env: ready: $(cd "$venv" && pwd)/bin/python (the benches find it there)"
