"""(a) The script a team writes first: the baseline every other contender is compared with.

json.load (which takes the bare NaN), pandas.json_normalize of the signals, one
Parquet file per task, one INSERT of a summary row per task. A task whose frame
pyarrow refuses (a column mixing strings and numbers: v1's string prices, mixed
timestamp spellings) is written again with such columns as text, the quick fix
such a script grows; a file that does not load is counted and skipped.
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
    import pyarrow as pa

    out_dir.mkdir(parents=True, exist_ok=True)
    conn = psycopg2.connect(db_url)
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (task_id text PRIMARY KEY, strategy text, "
                "timeframe text, n_signals integer, total_return double precision, win_rate double precision, "
                "sharpe_ratio double precision, profit_factor double precision, max_drawdown double precision)")
    started = time.perf_counter()
    stored = unreadable = retried_as_text = 0
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
        target = out_dir / f"{quote(task_id, safe='')}.parquet"
        try:
            frame.to_parquet(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            retried_as_text += 1
            for column in frame.columns[frame.dtypes == object]:
                frame[column] = frame[column].astype(str)
            frame.to_parquet(target)
        summary = doc.get("summary") if isinstance(doc.get("summary"), dict) else {}
        cur.execute(
            f"INSERT INTO {SUMMARY_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (task_id) DO NOTHING",
            (task_id, _text(doc.get("strategy")), _text(doc.get("timeframe")), len(signals),
             *(_number(summary.get(k)) for k in ("total_return", "win_rate", "sharpe_ratio",
                                                 "profit_factor", "max_drawdown"))))
        stored += 1
    conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    return {"work_seconds": seconds, "tasks_stored": stored, "unreadable": unreadable,
            "retried_as_text": retried_as_text, "errors": errors}


def _text(value):
    return None if value is None else str(value)


def _number(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
