#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite, real-model (slow)
# tests included. Extra arguments go to pytest and come last, so
# `bash scripts/test.sh -m "not slow"` runs the fast part only (as does a
# plain `pytest`, whose default deselects slow tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
set +e
.venv/bin/python -m pytest -q -rs --durations=15 -m "slow or not slow" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
