"""Arrow schemas of the signal and curve row tables."""

import pyarrow as pa

TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
INDICATORS_TYPE = pa.map_(pa.string(), pa.float64())

# symbol_idx: position in the document's `symbols` list, -1 for the top-level
# list (v1 signals / portfolio curve); seq: position inside that list.
SIGNAL_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("symbol_idx", pa.int32(), nullable=False),
        pa.field("seq", pa.int32(), nullable=False),
        pa.field("symbol", pa.string()),
        pa.field("ts", TIMESTAMP_UTC, nullable=False),
        pa.field("exit_ts", TIMESTAMP_UTC),
        pa.field("type", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("quantity", pa.float64()),
        pa.field("exit_price", pa.float64()),
        pa.field("return_pct", pa.float64()),
        pa.field("pnl", pa.float64()),
        pa.field("commission", pa.float64()),
        pa.field("holding_bars", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("indicators", INDICATORS_TYPE),
        pa.field("extras", pa.string()),  # JSON object of keys without a typed column
    ]
)

CURVE_SCHEMA = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("symbol_idx", pa.int32(), nullable=False),
        pa.field("seq", pa.int32(), nullable=False),
        pa.field("ts", TIMESTAMP_UTC),
        pa.field("equity", pa.float64()),
        pa.field("drawdown", pa.float64()),
        pa.field("extras", pa.string()),
    ]
)

# Row keys holding instants -> their timestamp column (in both tables).
TIMESTAMP_COLUMNS = {"timestamp": "ts", "exit_timestamp": "exit_ts"}
# Signal JSON keys stored in float64 columns; the column has the same name.
SIGNAL_FLOAT_KEYS = ("price", "quantity", "exit_price", "return_pct", "pnl", "commission")
CURVE_FLOAT_KEYS = ("equity", "drawdown")
METRIC_NAMES = ("total_return", "win_rate", "max_drawdown", "sharpe_ratio", "profit_factor", "num_trades")
