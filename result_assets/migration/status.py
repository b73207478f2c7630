"""Every known task's status: migrated, quarantined, failed (a proof failed: not published),
pending (registered, not migrated) or stale; and, beside a published version, the reason its
last attempt failed (`failed_attempt`: the published version stays readable, the next run retries)."""
from __future__ import annotations

from result_assets.migration.sources import source_differs, task_source_file
from result_assets.store.last_write import file_older_than_store


def task_statuses(stores) -> list[dict]:
    catalog = stores.catalog
    states = catalog.states()
    sources = catalog.sources()
    rows = []
    for task_id in sorted(set(states) | set(sources)):
        state = states.get(task_id)
        path = task_source_file(stores, task_id, sources.get(task_id) or (state.source_path if state else None))
        if state is None:
            rows.append({"task_id": task_id, "status": "pending", "reason": None, "failed_attempt": None})
            continue
        status = state.status
        # A superseded file (plan.superseded) is not stale: the store's version is the newer one.
        if path and source_differs(path, state.source_bytes, state.source_mtime_ns, state.source_sha256) \
                and not file_older_than_store(catalog, task_id, path, state.source_path, state.published_at_ns):
            status = "stale"
        rows.append({"task_id": task_id, "status": status,
                     "reason": state.reason if state.status in ("quarantined", "failed") else None,
                     "failed_attempt": state.failed_attempt})
    return rows

