"""Pure (Dagster-free) core for legacy backtest result files."""

from .compare import compare_documents
from .normalize import NormalizedResult, SymbolSummary, normalize, validate_result
from .parse import InvalidResult, dumps_document, parse_document
from .reconstruct import reconstruct
from .schema import CURVE_SCHEMA, SIGNAL_SCHEMA
from .task_keys import partition_key_for, task_id_for
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "CURVE_SCHEMA",
    "SIGNAL_SCHEMA",
    "InvalidResult",
    "NormalizedResult",
    "SymbolSummary",
    "compare_documents",
    "dumps_document",
    "format_timestamp",
    "normalize",
    "parse_document",
    "parse_timestamp",
    "partition_key_for",
    "reconstruct",
    "task_id_for",
    "validate_result",
]
