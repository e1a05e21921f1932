#!/usr/bin/env bash
# Idempotent setup: a virtual environment in .venv with langtrainer installed.
# On a machine without an NVIDIA GPU, torch is pinned to the CPU build 2.13.0
# first, so that resolving the other dependencies never pulls a multi-GB CUDA
# build. Set TORCH_SPEC (e.g. "torch") to choose another build, and
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) where the CPU
# wheel has to come from the PyTorch index.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LANGTRAINER_VENV:-.venv}"
PY="${PYTHON:-python3}"
say() { echo "setup: $*"; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# pip warns about every missing local index folder on some machines: noise.
quiet_pip() { "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
stamp="$VENV/.langtrainer-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "$VENV is up to date"
  exit 0
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    spec="${TORCH_SPEC:-torch>=2.4}"
  else
    spec="${TORCH_SPEC:-torch==2.13.0}"
  fi
  say "installing $spec (about 200 MB for the CPU build, more with CUDA; the longest step)"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    quiet_pip install "$spec" --index-url "$TORCH_INDEX_URL"
  else
    quiet_pip install "$spec"
  fi
fi
say "installing langtrainer and its dependencies (transformers, accelerate, datasets, shap, onnxruntime, scikit-learn, ...)"
quiet_pip install -e ".[test]"
echo "$want" > "$stamp"
say "done: $VENV/bin/langtrainer"
