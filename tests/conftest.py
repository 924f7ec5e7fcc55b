"""Shared fixtures: where ../shared (golden files, vocabularies, public notes) lives.

Tests that need it skip with a clear message when it is absent (a user's clone);
CI always has it beside the checkout.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICALBERT_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared/ folder (specs, golden outputs, vocabularies, public notes)."""
    if not (SHARED / "golden").is_dir():
        pytest.skip(f"../shared not found at {SHARED}: golden/vocab tests need it "
                    "(set CLINICALBERT_SHARED to its path)")
    return SHARED


@pytest.fixture(scope="session")
def cased_vocab(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vocab" / "bert-base-cased-vocab.txt"


@pytest.fixture(scope="session")
def uncased_vocab(shared_dir: Path) -> Path:
    return shared_dir / "data" / "vocab" / "bert-base-uncased-vocab.txt"
