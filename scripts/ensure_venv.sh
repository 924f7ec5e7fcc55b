#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (repo root), then build
# the native helpers in place. Sourced by run_tests.sh and run_pretraining.sh.
# Reinstalls only when a requirements file changed (hash stamp in .venv/.requirements.sha).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3
stamp_now="$(cat "$repo"/requirements*.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $($py --version 2>&1)" >&2
  "$py" -m venv "$venv"
fi
if [ "$(cat "$venv/.requirements.sha" 2>/dev/null)" != "$stamp_now" ]; then
  echo "[setup] installing requirements into .venv (one pip call; a few minutes the first time)" >&2
  # One call: tensorflow-cpu, spacy/scispacy, numpy<2 and torch's CPU wheel only resolve together.
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$repo/requirements-test.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$stamp_now" > "$venv/.requirements.sha"
fi
if [ -f "$repo/setup.py" ]; then
  # Native helpers (C) built in place; a no-op when up to date.
  (cd "$repo" && "$venv/bin/python" setup.py -q build_ext --inplace >/dev/null 2>"$venv/.build_ext.log") || {
    echo "[setup] building the native helpers failed; see $venv/.build_ext.log" >&2; cat "$venv/.build_ext.log" >&2; exit 1; }
fi
