"""The IO manager that hands a task's stored rows and documents to downstream assets.

One writer: the migration engine writes the Delta tables and the catalog, and the
multi-asset only reports what it did, so `handle_output` stores nothing. The IO manager
reads: `signal_table` and `curve_table` load a partition (or a range of them) as one
Arrow table, or as a pandas DataFrame when the input's type hint asks for one;
`catalog_entry` loads `{task_id: document}`, each what json.loads of the stored file
gives. Rows are read as their publishing commit wrote them, wherever they live (the hot
tier, a Delta file), as the application reads them. A partition with no published version
(quarantined, failed, not migrated yet) is an error when asked for alone, and left out of a
range with a warning naming it; a range in which no partition has one is an error too. It
reads as a sensor does (`StoresResource.reader()`): no DDL, no serving-cache fill.
"""
from __future__ import annotations

import logging
import typing

import psycopg2.errors
import pyarrow as pa
from dagster import ConfigurableIOManager, DagsterInvariantViolationError, Failure, InputContext, OutputContext

from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.assets.resources import NO_CATALOG, StoresResource
from result_assets.legacy import task_id_for
from result_assets.store.delta_tables import CURVES, SIGNALS
from result_assets.store.reader import published_rows, rebuild_documents

log = logging.getLogger(__name__)

STORE_IO_MANAGER = "store_io_manager"
_TABLES = {"signal_table": SIGNALS, "curve_table": CURVES}
DOCUMENTS = "catalog_entry"
READ_ASSETS = (*_TABLES, DOCUMENTS)


class StoreIOManager(ConfigurableIOManager):
    """Loads signal_table / curve_table partitions as Arrow tables (pandas on request) and
    catalog_entry partitions as documents; the migration engine is their only writer."""

    stores: StoresResource

    def handle_output(self, context: OutputContext, obj) -> None:
        if obj is not None:
            raise TypeError(f"{context.asset_key.to_user_string()} is written by the migration engine only; "
                            f"an asset returns nothing for it (got a {type(obj).__name__})")

    def load_input(self, context: InputContext):
        asset = context.asset_key.to_user_string()
        if asset not in READ_ASSETS:
            raise KeyError(f"{asset} is not stored by result-assets' store (it loads {', '.join(READ_ASSETS)})")
        keys = context.asset_partition_keys if context.has_asset_partitions else self._all_partitions(context)
        task_ids = [task_id_for(k) for k in keys]
        stores = self.stores.reader()  # one writer: the engine; a load creates and fills nothing
        found: set[str] = set()
        try:
            if asset == DOCUMENTS:
                loaded = rebuild_documents(stores, task_ids)
                found.update(loaded)
            else:
                loaded = published_rows(stores, _TABLES[asset], task_ids, found)
            # judged by what the read itself found published, not by a query before it
            _unpublished(context, stores, [t for t in task_ids if t not in found], len(task_ids))
        except psycopg2.errors.UndefinedTable:
            raise Failure(f"{asset}: {NO_CATALOG}") from None
        return loaded.to_pandas() if asset != DOCUMENTS and _wants_pandas(context) else loaded

    @staticmethod
    def _all_partitions(context: InputContext) -> list[str]:
        """An unpartitioned downstream asset reads every registered task."""
        return list(context.instance.get_dynamic_partitions(TASKS_PARTITION))


def _unpublished(context: InputContext, stores, missing_ids: list[str], asked: int) -> None:
    """A partition with no published version has no rows to give, which an empty table would
    hide: one partition asked for, or a range of which none has one, is an error naming their
    states; a range goes on without them and says which it left out (a quarantined task's
    partition is materialized, as a quarantine). `missing_ids`: the tasks the load's read
    found no published version of, out of the `asked` it read."""
    if not missing_ids:
        return
    states = stores.catalog.states(missing_ids)
    missing = {t: _why_unpublished(states.get(t)) for t in missing_ids}
    if asked == 1:
        raise Failure(f"{context.asset_key.to_user_string()}: task {missing_ids[0]!r} has no published version "
                      f"({missing[missing_ids[0]]})")
    listed = "; ".join(f"{t} ({why})" for t, why in list(missing.items())[:20])
    if len(missing) == asked:
        raise Failure(f"{context.asset_key.to_user_string()}: none of the {asked} partitions asked for "
                      f"has a published version: {listed}")
    message = (f"{context.asset_key.to_user_string()}: {len(missing)} of {asked} partitions have no "
               f"published version and give no rows: {listed}")
    try:
        context.log.warning(message)  # in a run: in its event log, beside the step
    except DagsterInvariantViolationError:  # load_asset_value outside a run has no run log
        log.warning(message)


def _why_unpublished(state) -> str:
    if state is None:
        return "not migrated yet"
    if state.status == "migrated":  # published after the load read it
        return "published while this load read; load it again"
    return f"{state.status}: {state.reason}"


def _wants_pandas(context: InputContext) -> bool:
    hint = context.dagster_type.typing_type if context.dagster_type else None
    # `pd.DataFrame | None` and `Optional[pd.DataFrame]` ask for pandas too
    hints = [h for h in (typing.get_args(hint) or (hint,)) if h is not type(None)]
    return any(h is not pa.Table and getattr(h, "__module__", "").startswith("pandas") for h in hints)
