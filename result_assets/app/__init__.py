"""The application side: write results in the current storage mode, read and query the store."""
from result_assets.app.errors import ResultNotFound, ResultStoreError, ResultValidationError
from result_assets.app.manager import MODES, ResultManager, SaveOutcome
from result_assets.app.query import ResultStore

__all__ = ["MODES", "ResultManager", "ResultNotFound", "ResultStore", "ResultStoreError",
           "ResultValidationError", "SaveOutcome"]
