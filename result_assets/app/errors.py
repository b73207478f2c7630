"""The exceptions the application sees from ResultManager and ResultStore."""
from __future__ import annotations


class ResultValidationError(ValueError):
    """The result is not a valid legacy document (or the task id is unusable); nothing was stored."""


class ResultStoreError(RuntimeError):
    """The store (catalog, Delta tables or backups) could not be read or written."""


class ResultNotFound(LookupError):
    """No result for this task where the current mode reads from."""
