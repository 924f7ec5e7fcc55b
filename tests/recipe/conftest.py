"""Recipe tests never write the user's fingerprint cache (~/.cache/clinicalbert)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_fingerprint_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CLINICALBERT_CACHE_DIR", str(tmp_path_factory.mktemp("fingerprint_cache")))
    yield
    mp.undo()
