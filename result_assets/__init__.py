"""result-assets: legacy backtest JSON results as Dagster assets in Delta tables and a Postgres catalog."""
from __future__ import annotations

__all__ = ["ResultManager", "ResultNotFound", "ResultStore", "ResultStoreError", "ResultValidationError",
           "read_result"]

_APP_EXPORTS = {"ResultManager", "ResultNotFound", "ResultStore", "ResultStoreError", "ResultValidationError"}


def __getattr__(name: str):
    """The application API, imported on first use (it pulls in the stores, never Dagster)."""
    if name in _APP_EXPORTS:
        import result_assets.app as app

        return getattr(app, name)
    raise AttributeError(f"module 'result_assets' has no attribute {name!r}")


def read_result(task_id: str) -> dict:
    """The migrated task's document, rebuilt from the Delta tables and the catalog the
    environment names (README "Configuration"). Raises what ResultStore.read_result raises
    (ResultNotFound, ResultStoreError, ResultValidationError)."""
    from result_assets.app.query import ResultStore

    store = ResultStore()
    try:
        return store.read_result(task_id)
    finally:
        store.close()
