#!/usr/bin/env bash
# The project's test command: sets up .venv if missing, then runs the whole suite.
# Extra arguments go to pytest (e.g. ./run_tests.sh tests/bert -k golden).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/python -m pytest "$@"
