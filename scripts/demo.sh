#!/usr/bin/env bash
# Set up .venv (idempotent) and run the offline demo. Extra arguments go to
# `langtrainer demo`, e.g. `bash scripts/demo.sh --quick`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/langtrainer demo "$@"
