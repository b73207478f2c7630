"""Every known task's status: migrated, quarantined, failed (a proof failed: not published),
pending (registered, not migrated) or stale."""
from __future__ import annotations

from pathlib import Path

from result_assets.migration.sources import RESULT_FILE, source_differs, task_dir_path


def task_statuses(stores) -> list[dict]:
    catalog = stores.catalog
    states = catalog.states()
    sources = catalog.sources()
    rows = []
    for task_id in sorted(set(states) | set(sources)):
        state = states.get(task_id)
        path = _source_file(task_id, sources.get(task_id) or (state.source_path if state else None))
        if state is None:
            rows.append({"task_id": task_id, "status": "pending", "reason": None})
            continue
        status = state.status
        if path and source_differs(path, state.source_bytes, state.source_mtime_ns, state.source_sha256):
            status = "stale"
        rows.append({"task_id": task_id, "status": status,
                     "reason": state.reason if state.status in ("quarantined", "failed") else None})
    return rows


def _source_file(task_id: str, registered: str | None) -> str | None:
    """The file under the registered source directory (a non-UTF-8 directory name is stored escaped)."""
    if not registered:
        return None
    task_dir = task_dir_path(Path(registered).parent.parent, task_id)
    return str(task_dir / RESULT_FILE) if task_dir else registered
