"""result-assets: legacy backtest JSON results as Dagster assets in Delta tables and a Postgres catalog."""
from __future__ import annotations

__all__ = ["ResultManager", "ResultStore", "ResultStoreError", "ResultValidationError", "read_result"]

_APP_EXPORTS = {"ResultManager", "ResultStore", "ResultStoreError", "ResultValidationError"}


def __getattr__(name: str):
    """The application API, imported on first use (it pulls in Dagster and the stores)."""
    if name in _APP_EXPORTS:
        import result_assets.app as app

        return getattr(app, name)
    raise AttributeError(f"module 'result_assets' has no attribute {name!r}")


def read_result(task_id: str) -> dict:
    """The migrated task's document, rebuilt from the Delta tables and the catalog."""
    from result_assets.store.reader import read_result as _read

    return _read(task_id)
