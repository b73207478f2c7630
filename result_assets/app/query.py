"""Querying the new store from the team's own code.

    store = ResultStore.from_env()
    store.find_tasks(strategy="sma_cross", symbol="KRW-BTC", order_by="sharpe_ratio", limit=10)
    store.signals(symbols=["KRW-BTC"], start="2024-01-01T00:00:00Z", columns=["pnl"])
    store.read_result("bt_20250901_3caf88")

find_tasks is answered by indexed catalog columns; signals reads the row groups of the
published tasks (the catalog says where they are), filters them, and decodes only the
asked-for columns. One ResultStore may be shared by threads: its calls take turns on its
one catalog connection.
"""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

import psycopg2.extras
import pyarrow as pa
import pyarrow.compute as pc

from result_assets.app.errors import ResultNotFound, ResultStoreError, ResultValidationError
from result_assets.app.task_ids import check_task_id
from result_assets.legacy import parse_timestamp
from result_assets.legacy.schema import CURVE_SCHEMA, SIGNAL_SCHEMA, TIMESTAMP_UTC
from result_assets.settings import Settings
from result_assets.store.catalog import METRICS, TASK_COLUMNS
from result_assets.store.cached_tables import QueryStores
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store import hot_rows
from result_assets.store.postgres import error_line
from result_assets.store.reader import TaskNotMigrated, TaskUnreadable, read_result, rebuild_documents
from result_assets.store.row_locations import RowsGone
from result_assets.store.stores import Stores

ORDERABLE = METRICS + ("n_signals", "n_symbols", "n_curve_points", "migrated_at", "task_id")
# Every catalog column but the document skeleton (large, and read_result's business).
ROW_COLUMNS = [c for c in TASK_COLUMNS if c != "skeleton"] + ["version", "migrated_at"]
# A start/end date written as 2024-01-03, 2024/01/03 or 2024.01.03, as a comparable key.
_DATE_KEY = "left(translate({}, '/.', '--'), 10)"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class ResultStore:
    """Read-only access to migrated results: catalog search, signal scans, whole documents."""

    def __init__(self, stores: Stores | None = None):
        self.stores = stores or QueryStores(existing_store(), readonly=True)
        self._lock = threading.RLock()  # one catalog connection: threads take turns on it

    @classmethod
    def from_env(cls) -> "ResultStore":
        return cls(QueryStores(existing_store(), readonly=True))

    def _connection(self):
        try:
            return self.stores.catalog.connect()
        except psycopg2.Error as exc:
            raise ResultStoreError(f"catalog unreachable: {error_line(exc)}") from exc

    def find_tasks(self, strategy: str | list[str] | None = None, symbol: str | list[str] | None = None,
                   since: date | datetime | str | None = None, until: date | datetime | str | None = None,
                   order_by: str = "total_return", descending: bool = True, limit: int = 10) -> list[dict]:
        """Migrated tasks matching every filter given, best first by `order_by`.

        strategy/symbol: a name or a list of names. since/until: the backtest period
        (end_date >= since, start_date <= until), compared as YYYY-MM-DD. Tasks without a
        value for `order_by` come last. Each row is the task's catalog row (no skeleton)
        plus `symbols`, the names of its symbols in document order.
        """
        if order_by not in ORDERABLE:
            raise ValueError(f"cannot order by {order_by!r}: use one of {', '.join(ORDERABLE)}")
        if limit < 1:
            return []
        where, params = ["status = 'migrated'"], []
        if strategy is not None:
            where.append("strategy = ANY(%s)")
            params.append(_names(strategy))
        if symbol is not None:
            where.append("EXISTS (SELECT 1 FROM task_symbols s WHERE s.task_id = tasks.task_id AND s.symbol = ANY(%s))")
            params.append(_names(symbol))
        if since is not None:
            where.append(_DATE_KEY.format("end_date") + " >= %s")
            params.append(_date_key(since))
        if until is not None:
            where.append(_DATE_KEY.format("start_date") + " <= %s")
            params.append(_date_key(until))
        select = f"SELECT {', '.join(ROW_COLUMNS)} FROM tasks WHERE {' AND '.join(where)}"
        direction = "DESC" if descending else "ASC"
        # A metric with no value is NULL, or NaN (a Sharpe ratio without trades), which
        # Postgres sorts above every number: both come last, not first.
        valued, unvalued = f"{order_by} IS NOT NULL", f"{order_by} IS NULL"
        if order_by in METRICS:
            valued, unvalued = f"{valued} AND {order_by} <> 'NaN'", f"({unvalued} OR {order_by} = 'NaN')"
        with self._lock:
            conn = self._connection()
            try:
                with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    # Two index-ordered scans (values, then the rest) rather than one NULLS LAST
                    # sort, which a plain btree index cannot serve in descending order.
                    cur.execute(f"{select} AND {valued} ORDER BY {order_by} {direction}, task_id LIMIT %s",
                                params + [limit])
                    rows = cur.fetchall()
                    if len(rows) < limit and order_by != "task_id":
                        cur.execute(f"{select} AND {unvalued} ORDER BY task_id LIMIT %s",
                                    params + [limit - len(rows)])
                        rows += cur.fetchall()
                    names: dict[str, list] = {r["task_id"]: [] for r in rows}
                    if names:
                        cur.execute("SELECT task_id, symbol FROM task_symbols WHERE task_id = ANY(%s) "
                                    "ORDER BY task_id, symbol_idx", (list(names),))
                        for r in cur.fetchall():
                            names[r["task_id"]].append(r["symbol"])
            except psycopg2.Error as exc:
                raise ResultStoreError(f"catalog unreachable: {error_line(exc)}") from exc
        return [{**dict(r), "symbols": names[r["task_id"]]} for r in rows]

    def signals(self, task_ids: list[str] | None = None, symbols: list[str] | None = None,
                start=None, end=None, columns: list[str] | None = None) -> pa.Table:
        """Signal rows matching every filter given: start <= ts < end (UTC; a string is read
        as the legacy format reads it, naive means Asia/Seoul). `columns` limits what is
        decoded, which is most of the cost on a large scan."""
        return self._scan(SIGNALS, SIGNAL_SCHEMA, task_ids, symbols, start, end, columns)

    def curves(self, task_ids: list[str] | None = None, start=None, end=None,
               columns: list[str] | None = None) -> pa.Table:
        """Curve points (portfolio: symbol_idx -1) matching the filters, like `signals`."""
        return self._scan(CURVES, CURVE_SCHEMA, task_ids, None, start, end, columns)

    def _scan(self, table, schema, task_ids, symbols, start, end, columns) -> pa.Table:
        with self._lock:
            return self._scanned(table, schema, task_ids, symbols, start, end, columns)

    def _scanned(self, table, schema, task_ids, symbols, start, end, columns) -> pa.Table:
        filters = []
        if task_ids is not None:
            task_ids = _checked(_names(task_ids))
            filters.append(pc.field("task_id").isin(pa.array(task_ids, pa.string())))
        if symbols is not None:
            symbols = _names(symbols)
            filters.append(pc.field("symbol").isin(pa.array(symbols, pa.string())))
        for bound, op in ((start, ">="), (end, "<")):
            if bound is not None:
                us = _instant_us(bound)
                scalar = pa.scalar(us, TIMESTAMP_UTC)
                filters.append(pc.field("ts") >= scalar if op == ">=" else pc.field("ts") < scalar)
        expression = None
        for f in filters:
            expression = f if expression is None else expression & f
        filter_columns = (("symbol",) if symbols is not None else ()) + (("ts",) if (start, end) != (None, None) else ())
        try:
            # Only what the catalog has published, where it says, as of one catalog snapshot: never
            # a failed or in-flight batch's rows, never a task twice while a flush moves it.
            for attempt in range(3):
                located, hot, unlocated = self.stores.catalog.published_rows(table, task_ids)
                try:
                    pieces = [self.stores.delta.files.scan(table, located, schema, columns, expression,
                                                           filter_columns)]
                    break
                except RowsGone:  # maintenance moved tasks and vacuumed meanwhile: a fresh snapshot
                    if attempt == 2:
                        raise
            if unlocated:  # published before locations were recorded: read as the commits that published them
                pieces += self._unlocated_rows(table, unlocated, expression, columns, filter_columns)
        except psycopg2.Error as exc:
            raise ResultStoreError(f"catalog unreachable: {error_line(exc)}") from exc
        except Exception as exc:
            raise ResultStoreError(f"cannot read the {table} table: {exc}") from exc
        for data in hot.values():
            rows = hot_rows.decode(data, schema)
            pieces.append(rows.filter(expression) if expression is not None else rows)
        names = columns if columns is not None else schema.names
        return pa.concat_tables([p.select(names).cast(pa.schema([schema.field(n) for n in names])) for p in pieces])

    def _unlocated_rows(self, table, unlocated: dict[str, int | None], expression, columns,
                        filter_columns) -> list[pa.Table]:
        """The rows of tasks published before row locations were recorded, each read at the
        table version that published it (the current snapshot may hold a batch in flight, or
        rows a later publish of another version wrote); a task's later commits never show."""
        by_version: dict[int | None, list[str]] = {}
        for task_id, version in unlocated.items():
            by_version.setdefault(version, []).append(task_id)
        pieces = []
        needed = None if columns is None else list(dict.fromkeys([*columns, "task_id", *filter_columns]))
        for version, ids in by_version.items():  # each version opened once, only its files of these tasks read
            rows = self.stores.delta.read_tasks(table, ids, columns=needed, version=version)
            if rows is not None:
                rows = rows.filter(expression) if expression is not None else rows
                pieces.append(rows.select(columns) if columns is not None else rows)
        return pieces

    def read_result(self, task_id: str) -> dict:
        """The task's document, rebuilt from the catalog skeleton and its Delta rows."""
        check_task_id(task_id, as_directory=False)
        try:
            with self._lock:
                return read_result(task_id, self.stores)
        except TaskNotMigrated as exc:
            raise ResultNotFound(str(exc)) from None
        except psycopg2.Error as exc:
            raise ResultStoreError(f"catalog unreachable: {error_line(exc)}") from exc
        except TaskUnreadable as exc:
            raise ResultStoreError(str(exc)) from exc

    def read_results(self, task_ids: list[str]) -> dict[str, dict]:
        """{task_id: document} of the migrated tasks among task_ids, in one pass per 1,000. A
        task whose stored rows are gone is left out with a warning in the log, never failing
        the others (ResultManager.get_results does the same); an id no task can have fails the
        call (ResultValidationError), as read_result does."""
        if isinstance(task_ids, str):  # its characters are not the ids meant
            raise ResultValidationError(f"read_results takes a list of task ids, not the string {task_ids[:40]!r}")
        try:
            with self._lock:
                return rebuild_documents(self.stores, _checked(list(task_ids)), unreadable={})
        except psycopg2.Error as exc:
            raise ResultStoreError(f"catalog unreachable: {error_line(exc)}") from exc

    def close(self) -> None:
        if "catalog" in self.stores.__dict__:
            self.stores.catalog.close()


def _names(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _checked(task_ids: list[str]) -> list[str]:
    for task_id in task_ids:
        check_task_id(task_id, as_directory=False)
    return task_ids


def existing_store(settings: Settings | None = None) -> Settings:
    """The settings of a store that exists: a reader given a home that is not there (a typo
    in RESULT_ASSETS_HOME, another working folder) would start a new empty one and then say
    its tables are missing."""
    settings = settings or Settings.from_env()
    if not settings.database_url and not settings.home.exists():
        raise ResultStoreError(f"no store at {settings.home} (RESULT_ASSETS_HOME, default ./.result_assets): "
                               "nothing was migrated or saved there")
    return settings


def _date_key(value) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value).replace("/", "-").replace(".", "-")[:10]


def _instant_us(value) -> int:
    """UTC microseconds of a datetime (naive not accepted), date (UTC midnight) or legacy timestamp."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("give a timezone-aware datetime (naive time is ambiguous)")
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, date):
        return (datetime(value.year, value.month, value.day, tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)
    us = parse_timestamp(value)
    if us is None:
        raise ValueError(f"not a timestamp: {value!r}")
    return us
