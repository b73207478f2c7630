"""(b) dlt, the loader a team would pick instead of writing one: same corpus, to Postgres or Parquet.

Tuned the way dlt's performance guide advises: yield a page (one task's signals)
per item rather than row by row; rotate intermediary files so normalize can run
in parallel; one normalize worker per core; parallel load jobs; the destination's
fast format (Postgres: csv, loaded with COPY; filesystem: parquet). The files are
read with the stdlib json module because dlt's own parser rejects bare NaN.
What dlt itself changes: nested objects become columns (`indicators__sma_c_20`),
names are normalized (`λ` becomes `x`), lists become child tables, and a value of
another type than its column's goes to a variant column (`price__v_text`).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from benchmarks.naive import signals_of

SPEED_SETTINGS = {
    "EXTRACT__DATA_WRITER__FILE_MAX_ITEMS": "100000",  # rotate: normalize gets several files to share
    "NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS": "100000",  # and load gets several jobs
    "DATA_WRITER__BUFFER_MAX_ITEMS": "20000",
    "NORMALIZE__WORKERS": str(os.cpu_count() or 2),
    "LOAD__WORKERS": "8",
    "RUNTIME__LOG_LEVEL": "WARNING",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
}


def corpus_source(files: list[tuple[str, Path]]):
    """One resource, each file read once: its signals go to `signals`, its summary to `tasks`."""
    import dlt

    # Without this hint dlt detects the ISO spellings as timestamps and fails the whole load
    # on the first one it cannot coerce (a naive Seoul wall time it reads as UTC is worse: silent).
    @dlt.resource(name="corpus", write_disposition="append",
                  columns={"timestamp": {"data_type": "text"}, "exit_timestamp": {"data_type": "text"}})
    def corpus():
        for task_id, path in files:
            doc = _load(path)
            if doc is None:
                continue
            rows = [{"task_id": task_id, **s} for s in signals_of(doc) if isinstance(s, dict)]
            if rows:
                yield dlt.mark.with_table_name(rows, "signals")  # a page per task
            summary = doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
            yield dlt.mark.with_table_name(
                {"task_id": task_id, "strategy": doc.get("strategy"), "timeframe": doc.get("timeframe"),
                 "params": doc.get("params"), **summary}, "tasks")

    return corpus


def _credentials(url: str) -> dict:
    """dlt puts `host` into the authority of a URL, where a socket folder cannot go: pass it as a
    libpq query parameter instead (it overrides the placeholder host)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return {"database": unquote(parts.path.lstrip("/")), "username": unquote(parts.username or ""),
            "password": unquote(parts.password or ""), "host": parts.hostname or "localhost",
            "port": parts.port or 5432, "query": query}


def _load(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def run(files: list[tuple[str, Path]], work_dir: Path, destination: str, db_url: str | None = None) -> dict:
    os.environ.update(SPEED_SETTINGS)
    import dlt

    work_dir.mkdir(parents=True, exist_ok=True)
    if destination == "postgres":
        dest = dlt.destinations.postgres(credentials=_credentials(db_url))
        file_format = "csv"
    else:
        dest = dlt.destinations.filesystem(bucket_url=str((work_dir / "bucket").absolute()))
        file_format = "parquet"
    pipeline = dlt.pipeline(pipeline_name=f"bench_{destination}", destination=dest, dataset_name="legacy",
                            pipelines_dir=str(work_dir / "pipelines"))
    started = time.perf_counter()
    info = pipeline.run(corpus_source(files)(), loader_file_format=file_format)
    seconds = time.perf_counter() - started
    rows = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace else {}
    return {"work_seconds": seconds, "loads": len(info.loads_ids), "row_counts": dict(rows),
            "has_failed_jobs": info.has_failed_jobs}
