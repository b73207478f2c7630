"""Where everything lives, read from the environment (see README "Configuration")."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None  # None: the embedded server under home/pg
    store_root: str  # local path or s3:// URI of the Delta tables
    backup_dir: str
    source_dir: str | None
    storage_mode: str
    dagster_home: Path

    @classmethod
    def from_env(cls) -> "Settings":
        home = Path(os.environ.get("RESULT_ASSETS_HOME") or "./.result_assets").absolute()
        return cls(
            home=home,
            database_url=os.environ.get("DATABASE_URL") or None,
            store_root=os.environ.get("RESULT_STORE_ROOT") or str(home / "store"),
            backup_dir=os.environ.get("RESULT_BACKUP_DIR") or str(home / "backups"),
            source_dir=os.environ.get("RESULT_SOURCE_DIR") or None,
            storage_mode=os.environ.get("RESULT_STORAGE_MODE") or "json-only",
            dagster_home=Path(os.environ.get("DAGSTER_HOME") or home / "dagster").absolute(),
        )

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"
