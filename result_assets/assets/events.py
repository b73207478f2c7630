"""Every event the code location reports to Dagster about task partitions is built here.

The engine returns what it did (a BatchResult with check outcomes by id, a rollback); this
module turns it into the events a person reads in the UI: per task partition, a
materialization of each of the five task assets (only when the attempt became the task's
record: a task not published keeps its last one) and an evaluation of each per-partition
check naming the materialization it judged, and per run one verdict of each run-level check
(assets/checks.py). The assets, the save reporter and the rollback command only yield or
report what these functions give. A maintenance flush rewrites no document, so it reports
on its own materialization (assets/report.py), not per partition.
"""
from __future__ import annotations

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    MaterializeResult,
    MetadataValue,
)

from result_assets.assets.checks import CHECKS, outcome_from_record
from result_assets.assets.dagster_internals import attach_partition_metadata, target_materialization
from result_assets.assets.metadata import TASK_ASSETS, batch_summary, partition_metadata
from result_assets.assets.partitions import TASKS_PARTITION
from result_assets.legacy import partition_key_for
from result_assets.migration.verify import COMPRESSION_GOAL, CheckOutcome

_DOCUMENT_ASSETS = ("validated_result", "catalog_entry")  # where a save's or rollback's metadata goes
_REPORT_LOCK = 7204  # pg advisory lock: one reporter of queued saves at a time


# --- a batch the engine published in this run ---

def backfill_events(context, stores, batch):
    """The multi-asset step's events: one declared result per asset (per-partition metadata
    attached to it), then the check evaluations. A declared result covers every partition of
    the step, so when a task was not published the recorded partitions get a materialization
    each instead (the specs are skippable) and the task's partition keeps its last one."""
    metadata = partition_metadata(stores, batch)
    recorded = recorded_partitions(batch)
    summary = batch_summary(batch)
    steps = {asset: _asset_summary(asset, batch, summary) for asset in TASK_ASSETS}
    if len(recorded) == len(batch.validated):
        for asset in TASK_ASSETS:
            attach_partition_metadata(context, asset, metadata[asset])
            yield MaterializeResult(asset_key=asset, metadata=steps[asset])
    else:  # each partition's own metadata and the step's, as a declared result's materializations carry
        yield from _partition_materializations(batch, metadata, recorded, steps)
    yield from check_events(batch.checks, declared=True, targets=check_targets(context, batch.checks, recorded),
                            single_partition_run=context.has_partition_key)


def task_list_events(context, stores, batch):
    """The explicit-list op's events: a materialization per asset and recorded partition, then the checks."""
    metadata = partition_metadata(stores, batch)
    recorded = recorded_partitions(batch)
    yield from _partition_materializations(batch, metadata, recorded)
    yield from check_events(batch.checks, declared=False, targets=check_targets(context, batch.checks, recorded),
                            enforce=True)


def recorded_partitions(batch) -> set[str]:
    """The partition keys whose attempt is now their task's record (published, or quarantined):
    what Dagster calls materialized. A task not published (a failed proof, an attempt kept
    beside its last good version) is not: its latest materialization stays the version readers
    get, and what the UI offers as missing or failed is what the next `migrate` tries again."""
    return {v.source.partition_key for v in batch.validated if v.failure is None}


def _partition_materializations(batch, metadata: dict, recorded: set[str], steps: dict | None = None):
    for v in batch.validated:
        key = v.source.partition_key
        if key in recorded:
            for asset in TASK_ASSETS:
                yield AssetMaterialization(asset_key=asset, partition=key,
                                           metadata={**(steps or {}).get(asset, {}), **metadata[asset][key]})


def _asset_summary(asset: str, batch, summary: dict) -> dict:
    """The step-level metadata of one asset (the per-partition metadata is attached apart)."""
    if asset == "validated_result":
        return summary
    if asset in ("signal_table", "curve_table"):
        rows = batch.signals if asset == "signal_table" else batch.curves
        out = {"dagster/row_count": rows.table.num_rows}
        if rows.commit is not None:
            out.update(delta_version=rows.commit.version, batch_bytes_written=rows.commit.bytes_added,
                       batch_files_written=rows.commit.files_added)
        return out
    return {}


def check_targets(context, outcomes: list[CheckOutcome], recorded: set[str]) -> dict:
    """{(asset, partition key): the materialization each per-partition check evaluated}: this
    run's, or for a partition the run did not materialize (its task not published) its latest,
    the version readers get, as Dagster's own check result targets without one of its step.

    An evaluation that names its target materialization is "current"; without one the UI's
    per-partition check status (GraphQL partitionStatuses) shows every partition as missing.
    """
    outcomes = [o for o in outcomes if CHECKS[o.check].per_partition]
    return _targets(context.instance, outcomes, recorded, len(recorded), context.run.run_id)


def _targets(instance, outcomes: list[CheckOutcome], recorded: set[str], materialized: int,
             run_id: str | None = None) -> dict:
    """_judged of the recorded partitions' outcomes (run_id's materializations when given), and
    of each other partition's, its latest materialization."""
    targets = _judged(instance, [o for o in outcomes if o.partition_key in recorded], materialized, run_id)
    for key in sorted({o.partition_key for o in outcomes} - recorded):  # rare: one lookup each
        targets.update(_judged(instance, [o for o in outcomes if o.partition_key == key], 1))
    return targets


def _judged(instance, checks: list[CheckOutcome], materialized: int, run_id: str | None = None) -> dict:
    """{(asset, partition): the newest materialization of it} (of run_id's only, when given) for
    the checked assets and partitions, `materialized` being how many materializations of each
    asset the run just stored: they are the newest, so the newest that many hold every
    partition's latest."""
    keys = sorted({c.partition_key for c in checks})
    targets = {}
    for asset in sorted({CHECKS[c.check].asset for c in checks}):
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=keys), limit=max(materialized, 1)).records
        for r in records:  # newest first
            if (asset, r.partition_key) not in targets and run_id in (None, r.run_id):
                targets[(asset, r.partition_key)] = target_materialization(r.storage_id, r.run_id, r.timestamp)
    return targets


def check_events(outcomes: list[CheckOutcome], declared: bool, targets: dict | None = None, enforce: bool = False,
                 single_partition_run: bool = False):
    """The per-partition checks' evaluations, one per partition, then one verdict per run-level
    check over all the outcomes' tasks (assets/checks.py says which is which).

    With `declared` (the multi-asset's step), every check spec also gets the step's declared
    result: a run-level check's verdict, and for a per-partition check a summary of its
    partitions. In a single-partition run (`single_partition_run`: the run has a partition
    key, not a range) the declared result is that partition's evaluation (Dagster attributes
    it to the partition), so nothing overwrites it. A range run of one partition (a UI
    backfill's chunk of one) is a range: Dagster gives its declared result no partition.
    A declared result carries its check's `blocking` (a failed one fails the step that
    migrated the partitions, so nothing downstream in its run reads them); with `enforce`
    (a step without declared results) each evaluation does. A report of what happened
    elsewhere (queued saves) does not enforce: its run did not write the partition."""
    targets = targets or {}
    single = declared and single_partition_run
    by_check: dict[str, list[CheckOutcome]] = {}
    for o in outcomes:
        by_check.setdefault(o.check, []).append(o)
    for check_id, check in CHECKS.items():
        results = by_check.get(check_id, [])
        if not check.per_partition:
            if results or declared:
                yield _run_verdict(check_id, results, declared)
            continue
        for o in results:
            metadata = {"task_id": o.task_id, **o.metadata}
            if single:
                yield AssetCheckResult(asset_key=check.asset, check_name=check.name, passed=o.passed,
                                       severity=check.severity, description=o.description, metadata=metadata)
                continue
            yield AssetCheckEvaluation(
                asset_key=AssetKey(check.asset), check_name=check.name, passed=o.passed, partition=o.partition_key,
                severity=check.severity, description=o.description, metadata=metadata,
                blocking=check.blocking and enforce,
                target_materialization_data=targets.get((check.asset, o.partition_key)))
        if declared and not single:
            failed = [o for o in results if not o.passed]
            yield AssetCheckResult(
                asset_key=check.asset, check_name=check.name, passed=not failed, severity=check.severity,
                description=f"{len(results) - len(failed)} of {len(results)} partitions passed",
                metadata={"partitions": len(results), "failed": len(failed), "failed_tasks": _listed(failed)})


def _run_verdict(check_id: str, results: list[CheckOutcome], declared: bool):
    """One evaluation of a run-level check over its tasks. For one task it is that task's own
    outcome; the compression goal, judged on the whole store, is the last outcome's figures."""
    check = CHECKS[check_id]
    failed = [o for o in results if not o.passed]
    passed = not failed
    if results and (len(results) == 1 or check_id == COMPRESSION_GOAL):
        last = results[-1]
        description, metadata = last.description, {"tasks": len(results), **last.metadata}
        if len(results) == 1:
            metadata["task_id"] = last.task_id
    else:
        description = f"{len(results) - len(failed)} of {len(results)} tasks passed"
        metadata = {"tasks": len(results)}
    if check_id != COMPRESSION_GOAL:
        metadata.update(failed=len(failed), failed_tasks=_listed(failed))
    if declared:
        return AssetCheckResult(asset_key=check.asset, check_name=check.name, passed=passed,
                                severity=check.severity, description=description, metadata=metadata)
    return AssetCheckEvaluation(asset_key=AssetKey(check.asset), check_name=check.name, passed=passed,
                                severity=check.severity, description=description, metadata=metadata)


def _listed(failed: list[CheckOutcome], limit: int = 50):
    """The failed tasks as a markdown list a person reads in the UI."""
    lines = [f"- `{o.task_id}`: {o.description}" for o in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"- ... and {len(failed) - limit} more")
    return MetadataValue.md("\n".join(lines) or "none")


# --- the application's saves, queued in the catalog ---

def queued_save_events(instance, catalog, batch: int = 500):
    """The events of the application's saves queued in the catalog (save_records, written in
    each save's own publishing transaction), for a run's op to yield: per save published the
    five materializations (a save the publish turned away has none), then per task the
    per-partition check evaluations of its newest save, each naming the materialization it
    judged (stored by the time this generator resumes), and at
    the end one verdict per run-level check over the reported tasks, as a backfill records
    them. A batch leaves the queue once all its events were taken: at least once.

    From a run, not runless: Dagster writes a runless partitioned check evaluation with a
    plain INSERT, so a partition's second one (a task saved again) fails on the unique index
    of asset_check_executions. One reporter at a time (an advisory lock)."""
    run_level: dict[str, list[CheckOutcome]] = {}  # task id: its newest save's run-level outcomes
    with catalog.advisory_lock(_REPORT_LOCK, wait=True):
        while records := catalog.queued_records(batch):
            keys = {r["partition_key"] for r in records}
            new_keys = sorted(keys - set(instance.get_dynamic_partitions(TASKS_PARTITION)))
            if new_keys:
                instance.add_dynamic_partitions(TASKS_PARTITION, new_keys)
            newest = {r["task_id"]: r["record_id"] for r in records}  # ordered by record id: the last wins
            proofs: list[CheckOutcome] = []
            recorded: set[str] = set()  # partitions materialized here: a save not published is not
            for r in records:
                if r["metadata"].get("status") != "failed":
                    recorded.add(r["partition_key"])
                    yield from _task_materializations(r["task_id"], r["partition_key"], r["metadata"],
                                                      r["description"])
                if newest[r["task_id"]] == r["record_id"] and r["checks"]:
                    checks = [outcome_from_record(c) for c in r["checks"]]
                    proofs += [c for c in checks if CHECKS[c.check].per_partition]
                    run_level[r["task_id"]] = [c for c in checks if not CHECKS[c.check].per_partition]
            # after the batch's materializations: what each proof judged (a save not published: the
            # partition's latest materialization, the save readers still get)
            yield from check_events(proofs, declared=False, targets=_targets(instance, proofs, recorded, len(records)))
            catalog.forget_records([r["record_id"] for r in records])
    yield from check_events([c for checks in run_level.values() for c in checks], declared=False)


def _task_materializations(task_id: str, key: str, metadata: dict, description: str):
    for asset in TASK_ASSETS:
        yield AssetMaterialization(asset_key=asset, partition=key, description=description,
                                   metadata=metadata if asset in _DOCUMENT_ASSETS else {"task_id": task_id})


# --- a rollback outside any run ---

def record_materializations(instance, task_id: str, metadata: dict, description: str) -> str:
    """Register the task's partition if new, then report the five task-level assets materialized
    outside a run (a rollback). Returns the partition key. The UI then shows the partition as
    materialized, exactly as after a migration run."""
    key = partition_key_for(task_id)
    if not instance.has_dynamic_partition(TASKS_PARTITION, key):
        instance.add_dynamic_partitions(TASKS_PARTITION, [key])
    for event in _task_materializations(task_id, key, metadata, description):
        instance.report_runless_asset_event(event)
    return key
