#!/usr/bin/env bash
# The clinicalBERT recipe, in order: notes -> sections/sentences -> TFRecords ->
# pretraining -> Hugging Face export -> comparison. Sets up .venv on first use.
#
#   ./run_pretraining.sh --demo                                   # synthetic notes, tiny model
#   ./run_pretraining.sh --notes NOTEEVENTS.csv.gz --init biobert_v1.0_pubmed_pmc --corpus all
#   ./run_pretraining.sh --help                                   # every step and override
#
# Rerunning the same command resumes; finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/ensure_venv.sh
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec .venv/bin/python -m recipe "$@"
