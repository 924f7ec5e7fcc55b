#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (repo root), then install
# the project into it (editable). Run by run_tests.sh and run_pretraining.sh.
#
# Device: GPU when `nvidia-smi -L` lists a GPU, else CPU; CLINICALBERT_DEVICE=gpu|cpu
# overrides. The runtime file of that device (requirements-gpu.txt / requirements.txt)
# and requirements-test.txt go in ONE pip call, so exactly one TensorFlow is installed.
# Reinstalls only when a requirements file or the device changed (stamp in
# .venv/.requirements.sha: device + hash of the files). A venv built for the other
# device is recreated from scratch (two TensorFlow builds must never share one).
#
# Then the project itself: `pip install --no-deps --no-build-isolation -e .` (the pins
# above are its dependencies; the venv's setuptools builds it: requirements-common.txt
# pins setuptools >= 70.1, the first to build wheels without the `wheel` package). This
# puts the packages on the venv's path (no PYTHONPATH needed) and the clinicalbert-*
# commands in .venv/bin, and builds the optional C helper bert/_cpd_native*.so; without a
# compiler the install still succeeds and the pure-Python path runs. Redone only when
# pyproject.toml, setup.py or the C source changed, the helper went missing or the
# compiler changed (stamp in .venv/.project.sha).
# CLINICALBERT_SETUP_DRY_RUN=1 prints the choice (`device=... requirements=...`, then the
# project's install command) and exits without touching .venv.
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
# The project on top of the pinned requirements (they are its dependencies: --no-deps),
# built by the venv's setuptools (--no-build-isolation: no download).
project_install=(--no-deps --no-build-isolation -e .)
if [ "${CLINICALBERT_SETUP_DRY_RUN:-0}" = 1 ]; then
  echo "device=$device requirements=$(basename "$runtime") $(basename "$repo/requirements-test.txt")"
  echo "project=pip install ${project_install[*]}"
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
# The project, editable. The stamp holds the packaging inputs' hash, whether the C helper
# is there and which compiler would build it: a deleted .so is rebuilt, another compiler
# (one installed later, another CC) is tried, but a machine without one does not retry
# on every run.
native_state() {
  if compgen -G "$repo/bert/_cpd_native*.so" >/dev/null; then echo native; else echo python; fi
  command -v "${CC:-cc}" 2>/dev/null || echo no-compiler
}
project_hash="$(cat "$repo/pyproject.toml" "$repo/setup.py" "$repo/bert/_cpd_native.c" | sha256sum | cut -d' ' -f1)"
project_old="$(cat "$venv/.project.sha" 2>/dev/null || true)"
if [ "$project_old" != "$(echo $project_hash $(native_state))" ] || [ ! -x "$venv/bin/clinicalbert-recipe" ]; then
  echo "[setup] installing the project into .venv (pip install -e .; builds the C helper)" >&2
  (cd "$repo" && "$venv/bin/pip" install --disable-pip-version-check "${project_install[@]}" \
      >"$venv/.install.log" 2>&1) || {
    echo "[setup] error: installing the project failed; see $venv/.install.log:" >&2
    tail -n 30 "$venv/.install.log" >&2; exit 1; }
  if ! compgen -G "$repo/bert/_cpd_native*.so" >/dev/null; then
    echo "[setup] the C helper bert/_cpd_native.c could not be built (no C compiler?; see" \
         "$venv/.install.log): create_pretraining_data will use its slower Python path" >&2
  fi
  echo $project_hash $(native_state) > "$venv/.project.sha"
fi
