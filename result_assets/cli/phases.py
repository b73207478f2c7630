"""`result-assets phase`: the current storage mode, and what stands between it and the next.

json-only -> dual-write -> postgres-only -> (archive the JSON). Switching to postgres-only
is never recommended while a task is not migrated (pending or stale): the JSON would
then be the only copy of that result and nothing would migrate it any more.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from result_assets.app.manager import DUAL_WRITE, JSON_ONLY, POSTGRES_ONLY
from result_assets.settings import Settings, source_folder
from result_assets.store.postgres import error_line

NEXT = {JSON_ONLY: DUAL_WRITE, DUAL_WRITE: POSTGRES_ONLY, POSTGRES_ONLY: "archive"}
SHOWN = 10  # task ids listed per blocker


def phase_report(settings: Settings, accept_quarantined: bool = False) -> dict:
    from result_assets.cli.archive import taken_aside
    from result_assets.migration.plan import plan_migration
    from result_assets.migration.sources import scan_source_dir
    from result_assets.store.last_write import same_file
    from result_assets.migration.status import task_statuses
    from result_assets.store.stores import Stores

    mode = settings.storage_mode  # the CLI refuses a mode it does not know
    stores = Stores(settings)
    rows = {r["task_id"]: r for r in task_statuses(stores)}
    on_disk = scan_source_dir(settings.source_dir).tasks if settings.source_dir else []
    for task in on_disk:  # present in the source directory but never registered
        rows.setdefault(task.task_id, {"task_id": task.task_id, "status": "pending", "reason": None})
    by_status: dict[str, list[dict]] = {}
    for row in sorted(rows.values(), key=lambda r: r["task_id"]):
        by_status.setdefault(row["status"], []).append(row)
    counts = {s: len(by_status.get(s, [])) for s in ("migrated", "quarantined", "pending", "stale")}
    if by_status.get("failed"):  # listed only when there are some: the report's shape stays as it was
        counts["failed"] = len(by_status["failed"])
    blockers, steps = [], []
    if by_status.get("failed"):  # in every phase: the store could not prove these, it must not serve them
        blockers.append({"what": "failed (a proof failed: not published)", "count": counts["failed"],
                         "detail": "see `result-assets status`; fix the cause and migrate them again",
                         "tasks": [_label(r) for r in by_status["failed"]]})
    target = NEXT[mode]
    if mode == JSON_ONLY:
        problem = _store_root_problem(settings.store_root)
        if problem:
            blockers.append({"what": "store", "count": 1, "detail": problem, "tasks": []})
        steps += ([f"run `result-assets migrate --source-dir {settings.source_dir or '<the JSON folder>'}` for the "
                   f"{counts['pending'] + counts['stale']} tasks not migrated yet"]
                  if counts["pending"] + counts["stale"] else [])
        steps += ["set RESULT_STORAGE_MODE=dual-write for the application and restart it",
                  "turn on new_task_sensor (it migrates whatever the store misses)"]
    elif mode == DUAL_WRITE:
        for status, what, fix in [
            ("pending", "not migrated", "wait for new_task_sensor, or run `result-assets migrate --source-dir DIR`"),
            ("stale", "stale (the JSON changed after it was migrated)", "wait for new_task_sensor, or migrate again"),
        ] + ([] if accept_quarantined else [
            ("quarantined", "quarantined (invalid JSON; the store cannot serve it)",
             "fix the file and save it again, or accept with --accept-quarantined (raw bytes stay in the backups)")]):
            found = by_status.get(status, [])
            if found:
                blockers.append({"what": what, "count": len(found), "detail": fix,
                                 "tasks": [_label(r) for r in found]})
        steps += ["set RESULT_STORAGE_MODE=postgres-only for the application and restart it",
                  "keep new_task_sensor on until `result-assets phase` shows nothing pending"]
    else:
        states = stores.catalog.states([t.task_id for t in on_disk])
        plan = plan_migration(stores.catalog, on_disk, False, states)
        behind = [_label(r) for s in ("pending", "stale") for r in by_status.get(s, [])]
        listed = {r["task_id"] for s in ("pending", "stale", "failed") for r in by_status.get(s, [])}
        # A JSON written after the task's postgres-only save (an instance still writing JSON):
        # not stale by its registration (the save's), but newer than the store's version.
        newer = sorted(t.task_id for t in plan.changed
                       if t.task_id not in listed and not same_file(states[t.task_id].source_path, t.path))
        behind += [f"{t} (its JSON is newer than the store's save)" for t in newer]
        if behind:
            blockers.append({"what": "not migrated", "count": len(behind),
                             "detail": "these JSON files are not in the store; archive skips them",
                             "tasks": behind})
        superseded = sorted(t.task_id for t in plan.superseded)
        if superseded:  # listed only when there are some: the report's shape stays as it was
            counts["superseded"] = len(superseded)
        # What archive would pack: the migrated files, not a quarantined, stale or superseded one
        kept = set(superseded) | set(newer)
        packable = sum(1 for t in on_disk if rows[t.task_id]["status"] == "migrated" and t.task_id not in kept)
        if packable:
            steps.append(f"`result-assets archive --to DIR` packs the {packable} JSON files "
                         f"still in {settings.source_dir} (migrated, verified ones only) and removes them")
        aside = taken_aside(settings.source_dir) if settings.source_dir else []
        if aside:
            steps.append(f"{len(aside)} JSON files an interrupted archive run took aside (e.g. {aside[0]}): "
                         "`result-assets archive` puts them back first")
        if superseded:
            shown = ", ".join(superseded[:SHOWN]) + (f", ... ({len(superseded) - SHOWN} more)"
                                                      if len(superseded) > SHOWN else "")
            steps.append(f"{len(superseded)} JSON files are older versions of results the application has saved "
                         f"to the store since ({shown}): archive keeps them and nothing migrates them; move or "
                         "delete them once checked")
        if not on_disk and not aside:
            steps.append("nothing left to archive: the store is the only record")
    return {
        "mode": mode,
        "next": target,
        "ready": not blockers,
        "tasks": counts,
        "json_files": len(on_disk),
        "source_dir": settings.source_dir,
        "blockers": blockers,
        "steps": steps,
    }


def _label(row: dict) -> str:
    return f"{row['task_id']} ({row['reason']})" if row.get("reason") else row["task_id"]


def _store_root_problem(root: str) -> str | None:
    if "://" in root:
        return None  # an object store: its credentials are checked on first write
    path = Path(root)
    while not path.exists():
        path = path.parent
    if not path.is_dir():  # a file on the way: nothing can be made under it
        return f"RESULT_STORE_ROOT {root} cannot be made: {path} is a file"
    if not os.access(path, os.W_OK):
        return f"RESULT_STORE_ROOT {root} is not writable"
    return None


def format_report(report: dict) -> str:
    t = report["tasks"]
    lines = [f"mode: {report['mode']}",
             f"tasks: {t['migrated']} migrated, {t['quarantined']} quarantined, {t['pending']} pending, "
             f"{t['stale']} stale; {report['json_files']} JSON files in {report['source_dir'] or '(no RESULT_SOURCE_DIR)'}",
             f"next phase: {report['next']}"]
    if report["blockers"]:
        lines.append("blocked by:")
        for b in report["blockers"]:
            shown = ", ".join(b["tasks"][:SHOWN]) + (f", ... ({b['count'] - SHOWN} more)" if b["count"] > SHOWN else "")
            lines.append(f"  {b['count']} {b['what']}" + (f": {shown}" if shown else ""))
            lines.append(f"    -> {b['detail']}")
        verdict = (f"NOT READY: do not switch to {report['next']} yet" if report["next"] != "archive"
                   else "NOT READY: some JSON files are not in the store yet")
    else:
        verdict = f"READY for {report['next']}"
    lines.append("then:" if not report["blockers"] else "when clear:")
    lines += [f"  {i}. {s}" for i, s in enumerate(report["steps"], 1)]
    lines.append(verdict)
    return "\n".join(lines)


# --- CLI: result-assets phase ---

def add_arguments(parser) -> None:
    parser.add_argument("--source-dir", help="the legacy task tree (default RESULT_SOURCE_DIR)")
    parser.add_argument("--accept-quarantined", action="store_true",
                        help="do not count quarantined tasks as blocking postgres-only")
    parser.add_argument("--check", action="store_true", help="exit 1 when the next phase is blocked")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args) -> int:
    import psycopg2

    from result_assets.cli import existing_home
    from result_assets.errors import DatabaseUnavailable, UsageError
    from result_assets.migration.sources import SourceDirError

    settings = Settings.from_env()
    if settings.storage_mode != JSON_ONLY:  # json-only: the first step, before any migrate made the store
        settings = existing_home()  # a mistyped home is an error, not a new empty store "READY for archive"
    if args.source_dir:
        from dataclasses import replace

        settings = replace(settings, source_dir=source_folder(args.source_dir))
    try:
        report = phase_report(settings, args.accept_quarantined)
    except (ValueError, SourceDirError) as exc:
        raise UsageError(str(exc))
    except psycopg2.Error as exc:
        raise DatabaseUnavailable(f"database unavailable: {error_line(exc)}") from None
    print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
    return 1 if args.check and not report["ready"] else 0
