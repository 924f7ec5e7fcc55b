"""Shared fixtures: where ../shared (golden files, vocabularies, public notes) lives, and
its parts by name (`golden_model`, `golden_cpd`, `golden_sections`, `public_notes`, the
vocabularies). Shared helpers (the TFRecord reader, /proc process and socket readers)
are plain functions in tests/helpers.py.

Tests that need ../shared take one of these fixtures and skip with one message when it is
absent (a user's clone); CI always has it beside the checkout. A CLINICALBERT_SHARED that
points nowhere fails instead: a path someone set on purpose must not skip silently.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICALBERT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared/ folder (specs, golden outputs, vocabularies, public notes)."""
    if not (SHARED / "golden").is_dir():
        if "CLINICALBERT_SHARED" in os.environ:
            pytest.fail(f"CLINICALBERT_SHARED={SHARED} has no golden/ folder: point it at the "
                        "project's shared/ folder", pytrace=False)
        pytest.skip(f"../shared not found at {SHARED}: golden/vocab tests need it "
                    "(set CLINICALBERT_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def golden_model(shared_dir: Path) -> Path:
    """The golden BERT (2 layers, hidden 64, vocab 627): bert_config.json, vocab.txt,
    init.ckpt, input.tfrecord, golden_outputs.npz, golden.json (its README: how made)."""
    return shared_dir / "golden" / "model"


@pytest.fixture(scope="session")
def golden_cpd(shared_dir: Path) -> Path:
    """Google's create_pretraining_data outputs: cases.json, the inputs, one folder per case."""
    return shared_dir / "golden" / "create_pretraining_data"


@pytest.fixture(scope="session")
def golden_sections(shared_dir: Path) -> dict:
    """clinicalBERT's section splitter on the public notes: {"sources": [file name per
    note], "results": [list of sections, or "ERROR", per note]}, 1,586 notes. One
    object for the whole session: read it, never change it."""
    return json.loads((shared_dir / "golden" / "sections" / "public_notes.sections.json").read_text())


@pytest.fixture(scope="session")
def public_notes(shared_dir: Path) -> Path:
    """Public clinical-style notes (MTSamples, MTS-Dialog, ACI-Bench CSVs; where each comes
    from and its licence: ../shared/data/SOURCES.md)."""
    return shared_dir / "data" / "public_notes"


@pytest.fixture(scope="session")
def cased_vocab(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vocab" / "bert-base-cased-vocab.txt"


@pytest.fixture(scope="session")
def uncased_vocab(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vocab" / "bert-base-uncased-vocab.txt"


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder no file can be created in, also for root (chattr +i where chmod is not
    enough)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    undo = [lambda: d.chmod(0o755)]
    if os.access(d, os.W_OK):  # root ignores permission bits
        if subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode != 0:
            d.chmod(0o755)
            pytest.skip("cannot make a read-only folder here (root without chattr)")
        undo.insert(0, lambda: subprocess.run(["chattr", "-i", str(d)], check=True))
    yield d
    for u in undo:
        u()
