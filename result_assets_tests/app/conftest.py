"""Fixtures for the application-side tests: an unreachable catalog, an unwritable store, the mode."""
from __future__ import annotations

import pytest

from result_assets_tests.app.helpers import closed_port


@pytest.fixture()
def store_down(monkeypatch):
    """DATABASE_URL pointing at a closed port on 127.0.0.1: the catalog is unreachable."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:app@127.0.0.1:{closed_port()}/catalog?connect_timeout=3")


@pytest.fixture()
def unwritable_store_root(monkeypatch, tmp_path):
    """RESULT_STORE_ROOT beneath a regular file: every Delta write fails (even as root)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    monkeypatch.setenv("RESULT_STORE_ROOT", str(blocker / "store"))


@pytest.fixture()
def mode(monkeypatch):
    def set_mode(value: str):
        monkeypatch.setenv("RESULT_STORAGE_MODE", value)
    return set_mode
