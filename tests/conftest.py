"""Shared fixtures: where ../shared (golden files, vocabularies, public notes) lives.

Tests that need it skip with a clear message when it is absent (a user's clone);
CI always has it beside the checkout.
"""
from __future__ import annotations

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
        pytest.skip(f"../shared not found at {SHARED}: golden/vocab tests need it "
                    "(set CLINICALBERT_SHARED to its path)")
    return SHARED


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
