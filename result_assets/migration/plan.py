"""What a migration has to do: which tasks are new, changed, or unchanged since last time.

Unchanged is decided without parsing: same size and mtime as recorded (fast path), or
else the same SHA-256.

Superseded: in postgres-only the application saves to the store and writes no JSON, so a
task's JSON left in the source directory is older than its save. Migrating it would put
the older result back over the application's save: a file that differs from the store's
version, which did not come from it and was published after the file was last written,
or whose bytes are a version the store replaced (store/last_write.py), is left alone even
by --force (`result-assets rollback` returns to an earlier version). Any other file
written after the store's version (an instance still writing JSON after the switch) is
changed, as before: the last write wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from result_assets.migration.sources import LegacyFile
from result_assets.store.backups import sha256_hex
from result_assets.store.catalog import CatalogState
from result_assets.store.last_write import older_than_store, same_file


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


def plan_migration(catalog, tasks: list[LegacyFile], force: bool,
                   states: dict[str, CatalogState] | None = None) -> Plan:
    """make_plan with the catalog's states of these tasks (`states`, when the caller has
    them), and the versions it replaced of those whose file is newer than a version that did
    not come from it."""
    states = catalog.states([t.task_id for t in tasks]) if states is None else states
    renewed = [t.task_id for t in tasks if (s := states.get(t.task_id)) is not None and s.published_at_ns
               and t.mtime_ns > s.published_at_ns and not same_file(s.source_path, t.path)]
    return make_plan(tasks, states, force, catalog.earlier_sources(renewed))


def make_plan(tasks: list[LegacyFile], states: dict[str, CatalogState], force: bool,
              replaced: dict[str, set[str]] | None = None) -> Plan:
    """`replaced`: Catalog.earlier_sources of tasks whose file is newer than the store's
    version (a copy of a replaced version is still superseded)."""
    plan = Plan()
    for task in tasks:
        state = states.get(task.task_id)
        if state is None:
            plan.new.append(task)
        elif superseded(task, state, (replaced or {}).get(task.task_id, set())):
            plan.superseded.append(task)
        elif force:
            plan.forced.append(task)
        elif _unchanged(task, state, plan.touched_mtimes):
            plan.unchanged.append(task)
        else:
            plan.changed.append(task)
    return plan


def superseded(task: LegacyFile, state: CatalogState, replaced: set[str] = frozenset()) -> bool:
    """The file holds other bytes than the store's version, and is older than it
    (last_write.older_than_store): an earlier version of the task, left alone. A file refused
    unread (a link, a FIFO) is judged by its mtime alone: older, it is left alone too, never
    quarantined over the store's version."""
    if state.status != "migrated":
        return False
    if task.refused:
        return task.mtime_ns is not None and older_than_store(task.path, task.mtime_ns, state.source_path,
                                                              state.published_at_ns)
    if not older_than_store(task.path, task.mtime_ns, state.source_path, state.published_at_ns, lambda: replaced):
        return False
    if task.size != state.source_bytes:
        return True
    try:
        with open(task.path, "rb") as f:
            return sha256_hex(f.read()) != state.source_sha256
    except OSError:
        return False


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
