"""Fixtures for image store tests: a fresh engine root per test (real SQLite, real layer dirs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagehelpers import make_store

from nanovisor.images.store import ImageStore


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return make_store(tmp_path / "root")
