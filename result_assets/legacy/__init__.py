"""Pure (Dagster-free) core for legacy backtest result files."""

from .compare import compare_documents
from .normalize import NormalizedResult, SymbolSummary, normalize, validate_result
from .parse import InvalidResult, dumps_document, parse_document
from .reconstruct import reconstruct
from .schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from .task_keys import dir_name_for_task_id, partition_key_for, task_id_for, task_id_for_dir_name
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "CURVE_SCHEMA",
    "SIGNAL_SCHEMA",
    "InvalidResult",
    "NormalizedResult",
    "SymbolSummary",
    "compare_documents",
    "dir_name_for_task_id",
    "dumps_document",
    "format_timestamp",
    "normalize",
    "parse_document",
    "parse_timestamp",
    "partition_key_for",
    "reconstruct",
    "task_id_for",
    "task_id_for_dir_name",
    "validate_result",
]
