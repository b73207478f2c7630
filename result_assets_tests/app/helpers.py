"""Sample documents for the application-side tests, a port nothing listens on, and a look at a
task's save lock from another session."""
from __future__ import annotations

import socket
from pathlib import Path

SAMPLES = Path(__file__).parent.parent / "samples" / "tasks"
V2_TASK = "bt_20250900_600020"  # 1592 signals, two symbols
V1_TASK = "bt_20250900_1aa072"  # layout v1: symbols as strings, top-level signals


def sample_document(task_id: str) -> dict:
    from result_assets.legacy import parse_document

    return parse_document((SAMPLES / task_id / "result.json").read_bytes())


def small_document(strategy: str = "sma_cross", symbol: str = "KRW-BTC", start: str = "2024-01-02",
                   end: str = "2024-03-01", total_return: float | None = 1.5, n: int = 3) -> dict:
    """A valid v2 document with n signals a day apart."""
    day = start.replace("/", "-")
    signals = [{"timestamp": f"{day[:8]}{int(day[8:10]) + i:02d} 09:00:00", "type": "buy" if i % 2 == 0 else "sell",
                "price": 100.0 + i, "quantity": 0.5, "pnl": float(i) - 1.0, "indicators": {"rsi": 30.0 + i}}
               for i in range(n)]
    summary = {"total_return": total_return, "num_trades": n}
    return {"strategy": strategy, "params": {"n1": 5}, "timeframe": "1d", "start_date": start, "end_date": end,
            "symbols": [{"symbol": symbol, "signals": signals, "performance": summary}],
            "summary": summary, "metadata": {"engine_version": "1.0.0"}}


def text(document) -> str:
    """A document as JSON text, to compare two: key order, int vs float and NaN compared too."""
    import json

    return json.dumps(document, allow_nan=True)


def closed_port() -> int:
    """A local port with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected_signals(task_id: str) -> int:
    import json

    return json.loads((SAMPLES.parent / "expect.json").read_text())[task_id]["signals"]


def save_lock_free(url: str, task_id: str) -> bool:
    """Whether another session (as an application save's) could take task_id's save lock now.
    Closing that session lets go of it again."""
    import psycopg2

    from result_assets.store.catalog import TASK_SAVE_LOCK

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (TASK_SAVE_LOCK, task_id))
            return cur.fetchone()[0]
    finally:
        conn.close()
