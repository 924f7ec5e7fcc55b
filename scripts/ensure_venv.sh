#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (repo root), then build
# the native helpers in place. Sourced by run_tests.sh and run_pretraining.sh.
#
# Device: GPU when `nvidia-smi -L` lists a GPU, else CPU; CLINICALBERT_DEVICE=gpu|cpu
# overrides. The runtime file of that device (requirements-gpu.txt / requirements.txt)
# and requirements-test.txt go in ONE pip call, so exactly one TensorFlow is installed.
# Reinstalls only when a requirements file or the device changed (stamp in
# .venv/.requirements.sha: device + hash of the files). A venv built for the other
# device is recreated from scratch (two TensorFlow builds must never share one).
# CLINICALBERT_SETUP_DRY_RUN=1 prints the choice (`device=... requirements=...`) and
# exits without touching .venv.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
py="${PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

device="${CLINICALBERT_DEVICE:-}"
if [ -z "$device" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    device=gpu
  else
    device=cpu
  fi
fi
case "$device" in
  cpu) runtime="$repo/requirements.txt" ;;
  gpu) runtime="$repo/requirements-gpu.txt" ;;
  *) echo "[setup] error: CLINICALBERT_DEVICE must be cpu or gpu, not '$device'" >&2; exit 2 ;;
esac
if [ "${CLINICALBERT_SETUP_DRY_RUN:-0}" = 1 ]; then
  echo "device=$device requirements=$(basename "$runtime") $(basename "$repo/requirements-test.txt")"
  exit 0
fi

stamp_now="$device $(cat "$repo"/requirements*.txt | sha256sum | cut -d' ' -f1)"
stamp_old="$(cat "$venv/.requirements.sha" 2>/dev/null || true)"
if [ -n "$stamp_old" ] && [ "${stamp_old%% *}" != "$device" ]; then
  echo "[setup] $venv was built for ${stamp_old%% *}; recreating it for $device" >&2
  rm -rf "$venv"
  stamp_old=""
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv ($device) with $($py --version 2>&1)" >&2
  "$py" -m venv "$venv"
fi
if [ "$stamp_old" != "$stamp_now" ]; then
  echo "[setup] installing the $device requirements into .venv (one pip call; a few minutes the first time)" >&2
  "$venv/bin/pip" install --disable-pip-version-check -q -r "$runtime" -r "$repo/requirements-test.txt" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$stamp_now" > "$venv/.requirements.sha"
fi
if [ -f "$repo/setup.py" ]; then
  # Native helpers (C) built in place; a no-op when up to date.
  (cd "$repo" && "$venv/bin/python" setup.py -q build_ext --inplace >/dev/null 2>"$venv/.build_ext.log") || {
    echo "[setup] building the native helpers failed; see $venv/.build_ext.log" >&2; cat "$venv/.build_ext.log" >&2; exit 1; }
fi
