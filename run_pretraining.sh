#!/usr/bin/env bash
# The clinicalBERT recipe, in order: notes -> sections/sentences -> TFRecords ->
# pretraining -> Hugging Face export -> comparison. Sets up .venv on first use.
#
#   ./run_pretraining.sh --demo                                   # synthetic notes, tiny model
#   ./run_pretraining.sh --notes NOTEEVENTS.csv.gz --init biobert_v1.0_pubmed_pmc --corpus all
#   ./run_pretraining.sh --help                                   # every step and override
#
# Rerunning the same command resumes; finished steps are skipped. Relative paths are the
# caller's: this script does not change directory (the recipe finds the repo itself).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$repo/scripts/ensure_venv.sh"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# The packages come from the venv's editable install of this checkout (ensure_venv.sh).
# -P: the caller's directory is not put on sys.path, where it would come before the
# install (a folder named like one of our packages there must not shadow it).
exec "$repo/.venv/bin/python" -P -m recipe "$@"
