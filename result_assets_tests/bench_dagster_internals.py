"""Cost of public `context.add_asset_metadata(partition_key=...)` against the fenced private
path (attach_partition_metadata), in one 5-asset step over 50 dynamic partitions.

    python -m result_assets_tests.bench_dagster_internals [--registered 1000 10000] [--postgres]

Default instance: dagster.instance_for_test() (SQLite). --postgres: the project's instance
on a throwaway embedded server (what a migration run uses).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from dagster import AssetSpec, DynamicPartitionsDefinition, MaterializeResult, materialize, multi_asset

from result_assets.assets.dagster_internals import attach_partition_metadata

ASSETS = ["a1", "a2", "a3", "a4", "a5"]
PARTITIONS = DynamicPartitionsDefinition(name="bench")
STEP_PARTITIONS = 50
timings: dict[str, float] = {}


def make_asset(mode: str):
    @multi_asset(name=f"bench_{mode}", specs=[AssetSpec(a, partitions_def=PARTITIONS) for a in ASSETS],
                 partitions_def=PARTITIONS)
    def step(context):
        per_partition = {p: {"task_id": p} for p in context.partition_keys}  # lists partitions once
        started = time.perf_counter()
        for asset in ASSETS:
            if mode == "public":
                for partition, metadata in per_partition.items():
                    context.add_asset_metadata(metadata, asset_key=asset, partition_key=partition)
            else:
                attach_partition_metadata(context, asset, per_partition)
        timings[mode] = time.perf_counter() - started
        for asset in ASSETS:
            yield MaterializeResult(asset_key=asset)

    return step


def run(instance, registered: int) -> None:
    keys = [f"p{i:06d}" for i in range(registered)]
    for start in range(0, len(keys), 10_000):
        instance.add_dynamic_partitions("bench", keys[start:start + 10_000])
    step_keys = keys[-STEP_PARTITIONS:]
    tags = {"dagster/asset_partition_range_start": step_keys[0],
            "dagster/asset_partition_range_end": step_keys[-1]}
    calls = len(ASSETS) * STEP_PARTITIONS
    for mode in ("public", "private"):
        assert materialize([make_asset(mode)], instance=instance, tags=tags).success
        print(f"{registered:>7} registered  {mode:<8} {timings[mode]:8.3f} s per step  "
              f"{timings[mode] / calls * 1000:8.3f} ms per (asset, partition)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registered", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    for registered in args.registered:
        if not args.postgres:
            from dagster import instance_for_test

            with instance_for_test() as instance:
                run(instance, registered)
            continue
        home = tempfile.mkdtemp(prefix="bench-internals-")
        os.environ["RESULT_ASSETS_HOME"] = home
        for var in ("DATABASE_URL", "DAGSTER_HOME"):
            os.environ.pop(var, None)
        from result_assets.store import postgres
        from result_assets.assets.instance import get_instance
        from result_assets.settings import Settings

        postgres._embedded_server_url.cache_clear()
        postgres._ensure_database.cache_clear()
        try:
            with get_instance() as instance:
                run(instance, registered)
        finally:
            postgres.stop_embedded(Settings.from_env())
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
