"""result-assets: legacy backtest JSON results as Dagster assets in Delta tables and a Postgres catalog."""
from __future__ import annotations

__all__ = ["read_result"]


def read_result(task_id: str) -> dict:
    """The migrated task's document, rebuilt from the Delta tables and the catalog."""
    from result_assets.store.reader import read_result as _read

    return _read(task_id)
