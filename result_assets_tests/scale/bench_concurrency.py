"""Throughput of 1, 2 and 4 concurrent migration processes on one store and catalog.

    python -m result_assets_tests.scale.bench_concurrency [--tasks 96] [--writers 1 2 4] [--s3]

Each setting gets a fresh home (embedded Postgres) and the same generated corpus, split into
contiguous batches, one `result-assets migrate --task ...` process per batch, all started at
once; the instance and catalog are prepared first and not timed. --s3 puts the store and the
backups on a local moto server.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from result_assets_tests.scale.concurrent import migrate_concurrently


def run(tasks: int, writers: list[int], s3: bool) -> None:
    from benchmarks.corpus import generate_corpus

    work = Path(tempfile.mkdtemp(prefix="ra-bench-"))
    source = work / "tasks"
    expect = generate_corpus(source, tasks, seed=5, bad_per_kind=0)
    ids = sorted(expect)
    json_mb = sum(p.stat().st_size for p in source.glob("*/result.json")) / 1e6
    server = None
    env = dict(os.environ)
    if s3:
        from result_assets_tests.scale.conftest import S3_VARS, free_port, make_bucket, wait_for_port

        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "result_assets_tests.scale.s3_server", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, server)
        env.update(S3_VARS, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    print(f"{len(ids)} tasks, {json_mb:.1f} MB of JSON, store {'on S3 (moto)' if s3 else 'local'}, {os.cpu_count()} cores")
    try:
        for n in writers:
            home = work / f"home{n}"
            run_env = {**env, "RESULT_ASSETS_HOME": str(home)}
            run_env.pop("DATABASE_URL", None)
            if s3:
                os.environ.update(env)
                bucket = make_bucket(env["AWS_ENDPOINT_URL"])
                run_env.update(RESULT_STORE_ROOT=f"s3://{bucket}/store", RESULT_BACKUP_DIR=f"s3://{bucket}/backups")
            subprocess.run([sys.executable, "-c", "from result_assets_tests.scale.concurrent import prepare_instance;"
                            "prepare_instance()"], env=run_env, check=True)
            size = -(-len(ids) // n)
            batches = [ids[i:i + size] for i in range(0, len(ids), size)]
            cpu_before = _children_cpu()
            outcomes, seconds = migrate_concurrently(source, batches, run_env, timeout=1800)
            cpu = _children_cpu() - cpu_before  # the migrate processes' own CPU (not Postgres)
            migrated = sum(o.report["migrated"] for o in outcomes if o.report)
            failed = [o.stderr[-500:] for o in outcomes if o.returncode != 0]
            print(f"  {n} writer(s): {migrated}/{len(ids)} migrated in {seconds:.1f}s wall = "
                  f"{migrated / seconds:.2f} tasks/s, {json_mb / seconds:.2f} MB JSON/s, "
                  f"{cpu:.0f} CPU-s in the workers ({cpu / seconds:.1f} cores busy)" + (f"; FAILED {failed}" if failed else ""),
                  flush=True)
            subprocess.run([sys.executable, "-c", "from result_assets.store.postgres import stop_embedded;"
                            "from result_assets.settings import Settings; stop_embedded(Settings.from_env())"],
                           env=run_env, check=True)
    finally:
        if server:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=96)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    run(args.tasks, args.writers, args.s3)


if __name__ == "__main__":
    main()
