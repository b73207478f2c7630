"""The three stores a migration writes, built from Settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from result_assets.settings import Settings
from result_assets.store.backups import BackupStore, open_backup_store
from result_assets.store.catalog import Catalog
from result_assets.store.delta_tables import DeltaStore, s3_storage_options
from result_assets.store.read_cache import ReadCache, process_cache
from result_assets.store.serving_cache import ServingCache


@dataclass
class Stores:
    settings: Settings
    # A reader never creates the schema (tables, indexes are the owner's `db upgrade`), so a
    # read-only role (docs/reliability.md "A read-only database role for readers") can read.
    readonly: bool = False
    # `migrate`: bring the schema up to date first (under its lock), as `result-assets db upgrade` does.
    upgrade: bool = False
    # Small per-process memos (e.g. the whole-store report an application save judges against).
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls) -> "Stores":
        return cls(Settings.from_env())

    @cached_property
    def delta(self) -> DeltaStore:
        # s3:// roots take endpoint and credentials from the standard AWS variables.
        root = self.settings.store_root
        return DeltaStore(root, s3_storage_options(root))

    @cached_property
    def backups(self) -> BackupStore:
        root = self.settings.backup_dir
        return open_backup_store(root, s3_storage_options(root))

    @cached_property
    def read_cache(self) -> ReadCache:
        max_bytes = self.settings.read_cache_mb << 20
        return process_cache(self.catalog.url, max_bytes) if max_bytes else ReadCache(0)

    @cached_property
    def serving_cache(self) -> ServingCache:
        return ServingCache(self.catalog, self.settings.serving_cache_mb << 20, readonly=self.readonly)

    @cached_property
    def catalog(self) -> Catalog:
        from result_assets.store.postgres import catalog_url

        catalog = Catalog(catalog_url(self.settings))
        # One SELECT: a catalog older than the code stops here with one line; an empty one
        # is created by a writer (a new home). Never DDL on a catalog in use.
        if self.upgrade:
            catalog.upgrade_schema()
        else:
            catalog.require_schema(create_if_empty=not self.readonly)
        return catalog
