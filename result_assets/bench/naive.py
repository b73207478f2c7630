"""(a) The script a team writes first: the baseline every other contender is compared with.

json.load (which takes the bare NaN), pandas.json_normalize of the signals, one
Parquet file per task, one INSERT of a summary row per task. A task whose frame
pandas/pyarrow cannot write (a column mixing strings and numbers, say) is caught,
counted and skipped, as such a script would log it and go on.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

SUMMARY_TABLE = "naive_results"


def signals_of(doc: dict) -> list[dict]:
    """v1: the top-level list; v2: each symbol's signals, tagged with the symbol."""
    if isinstance(doc.get("signals"), list):
        return doc["signals"]
    rows = []
    for entry in doc.get("symbols") or []:
        if isinstance(entry, dict):
            rows += [{**s, "symbol": entry.get("symbol")} for s in entry.get("signals") or []]
    return rows


def run(files: list[tuple[str, Path]], out_dir: Path, db_url: str) -> dict:
    import pandas as pd
    import psycopg2

    out_dir.mkdir(parents=True, exist_ok=True)
    conn = psycopg2.connect(db_url)
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (task_id text PRIMARY KEY, strategy text, "
                "timeframe text, n_signals integer, total_return double precision, win_rate double precision, "
                "sharpe_ratio double precision, profit_factor double precision, max_drawdown double precision)")
    started = time.perf_counter()
    stored = unreadable = unwritable = 0
    errors: dict[str, int] = {}
    for task_id, path in files:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            signals = signals_of(doc)
        except (ValueError, AttributeError, TypeError) as exc:
            unreadable += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        frame = pd.json_normalize(signals)
        frame["task_id"] = task_id
        try:
            frame.to_parquet(out_dir / f"{quote(task_id, safe='')}.parquet")
        except Exception as exc:  # noqa: BLE001 - the baseline logs and goes on
            unwritable += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        summary = doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
        cur.execute(
            f"INSERT INTO {SUMMARY_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (task_id) DO NOTHING",
            (task_id, doc.get("strategy"), doc.get("timeframe"), len(signals),
             *(_number(summary.get(k)) for k in ("total_return", "win_rate", "sharpe_ratio",
                                                 "profit_factor", "max_drawdown"))))
        stored += 1
    conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    return {"work_seconds": seconds, "tasks_stored": stored, "unreadable": unreadable,
            "unwritable": unwritable, "errors": errors}


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
