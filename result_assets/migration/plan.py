"""What a migration has to do: which tasks are new, changed, or unchanged since last time.

Unchanged is decided without parsing: same size and mtime as recorded (fast path), or
else the same SHA-256.
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
    touched_mtimes: dict[str, int] = field(default_factory=dict)  # same bytes, new mtime

    @property
    def to_migrate(self) -> list[LegacyFile]:
        return self.new + self.changed + self.forced


def make_plan(tasks: list[LegacyFile], states: dict[str, CatalogState], force: bool) -> Plan:
    plan = Plan()
    for task in tasks:
        state = states.get(task.task_id)
        if state is None:
            plan.new.append(task)
        elif force:
            plan.forced.append(task)
        elif _unchanged(task, state, plan.touched_mtimes):
            plan.unchanged.append(task)
        else:
            plan.changed.append(task)
    return plan


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
