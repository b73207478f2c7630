"""What a migration has to do: which tasks are new, changed, or unchanged since last time.

Unchanged is decided without parsing: same size and mtime as recorded (fast path), or
else the same SHA-256.

Superseded: in postgres-only the application saves to the store and writes no JSON, so a
task's JSON left in the source directory is the version its save replaced. Migrating it
would put the older result back over the application's save (the sensor would do so
within a minute): such a file, whose bytes the store already had, is left alone even by
--force (`result-assets rollback` returns to an earlier version). A file whose bytes the
store never had (an instance still writing JSON after the switch) is changed, as before.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from result_assets.migration.sources import LegacyFile
from result_assets.store.backups import sha256_hex
from result_assets.store.catalog import CatalogState


@dataclass
class Plan:
    new: list[LegacyFile] = field(default_factory=list)
    changed: list[LegacyFile] = field(default_factory=list)
    unchanged: list[LegacyFile] = field(default_factory=list)
    forced: list[LegacyFile] = field(default_factory=list)
    superseded: list[LegacyFile] = field(default_factory=list)  # older than the application's save: left alone
    touched_mtimes: dict[str, int] = field(default_factory=dict)  # same bytes, new mtime

    @property
    def to_migrate(self) -> list[LegacyFile]:
        return self.new + self.changed + self.forced


def plan_migration(catalog, tasks: list[LegacyFile], force: bool) -> Plan:
    """make_plan with the catalog's states, and the earlier sources of the tasks the
    application saved (the only ones a file can be superseded for)."""
    states = catalog.states([t.task_id for t in tasks])
    saved = [t.task_id for t in tasks if _saved_by_application(states.get(t.task_id))]
    return make_plan(tasks, states, force, catalog.earlier_sources(saved))


def make_plan(tasks: list[LegacyFile], states: dict[str, CatalogState], force: bool,
              earlier_sources: dict[str, set[str]] | None = None) -> Plan:
    """`earlier_sources`: Catalog.earlier_sources of the tasks the application saved."""
    plan = Plan()
    for task in tasks:
        state = states.get(task.task_id)
        if state is None:
            plan.new.append(task)
        elif _superseded(task, state, earlier_sources or {}):
            plan.superseded.append(task)
        elif force:
            plan.forced.append(task)
        elif _unchanged(task, state, plan.touched_mtimes):
            plan.unchanged.append(task)
        else:
            plan.changed.append(task)
    return plan


def _saved_by_application(state: CatalogState | None) -> bool:
    """Published from a postgres-only save: the store's version has no file of its own."""
    return state is not None and state.status == "migrated" and state.source_path is None


def _superseded(task: LegacyFile, state: CatalogState, earlier_sources: dict[str, set[str]]) -> bool:
    """The file holds a version of the task that the application's save replaced."""
    earlier = earlier_sources.get(task.task_id)
    if not earlier or task.refused or not _saved_by_application(state):
        return False
    try:
        with open(task.path, "rb") as f:
            sha = sha256_hex(f.read())
    except OSError:
        return False
    return sha in earlier and sha != state.source_sha256


def _unchanged(task: LegacyFile, state: CatalogState, touched: dict[str, int]) -> bool:
    if state.status == "failed" or state.failed_attempt:
        return False  # never published, or the last attempt failed: every run tries again
    if task.refused:
        return state.reason == task.refused
    if task.size != state.source_bytes:
        return False
    if task.mtime_ns == state.source_mtime_ns:
        return True
    try:
        with open(task.path, "rb") as f:
            same = sha256_hex(f.read()) == state.source_sha256
    except OSError:
        return False
    if same:
        touched[task.task_id] = task.mtime_ns
    return same
