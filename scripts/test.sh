#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite, real-model (slow)
# tests included. Extra arguments go to pytest and come last, so
# `bash scripts/test.sh -m "not slow"` runs the fast part only (as does a
# plain `pytest`, whose default deselects slow tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One test renders the token-view page in Debian's headless Chromium. Where it is
# missing and apt can install it (root on Debian, as in CI), it is installed;
# elsewhere that test is skipped.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "chromium could not be installed: the token-view rendering test will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The linter first (config in pyproject.toml): a lint error fails the run like a test.
.venv/bin/ruff check .
# With no arguments: the fast tests, then the slow (real-model) ones, each in a
# process of its own. One process for both peaks above 12 GB (a tokenizer test
# keeps ~11 GB resident), and the real-model runs need their own room on a
# 24 GB machine. With arguments, one pytest run with them.
run_pytest() {
  set +e
  .venv/bin/python -m pytest -q -rs --durations=15 "$@"
  local code=$?
  set -e
  if [ "$code" -eq 5 ]; then
    echo "pytest collected no tests" >&2
    code=1
  fi
  return "$code"
}
if [ "$#" -gt 0 ]; then
  run_pytest -m "slow or not slow" "$@" || exit $?
  exit 0
fi
rc=0
run_pytest -m "not slow" || rc=$?
run_pytest -m slow || rc=$?
exit "$rc"
