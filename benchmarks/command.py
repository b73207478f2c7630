"""`result-assets bench`: arguments, and the entry the CLI calls (the bench itself is runner.py).

Kept import-light: the CLI builds every subcommand's parser on each invocation.
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from result_assets.cli import whole_number
    from result_assets.settings import DEFAULT_BATCH_SIZE

    parser.add_argument("--tasks", type=whole_number(0), default=2000, help="ordinary tasks in the corpus (default 2000)")
    parser.add_argument("--huge", type=whole_number(0), default=3, help="tasks of 100k signals (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default="bench-work", help="corpus, outputs and bench.json (default ./bench-work)")
    parser.add_argument("--only", default="a,b,c,d,s,t",
                        help="contenders to run, of a,b,c,d,s,t ((c) runs on stock dagster-postgres storage; s: (c) "
                             "with a team's own stock dagster.yaml; t: (c) on the opt-in tuned storage; default all)")
    parser.add_argument("--scale", action="store_true", help="also time 100k partitions, dry run and status")
    parser.add_argument("--scale-tasks", type=whole_number(0), default=100_000, help="tasks for --scale (default 100000)")
    parser.add_argument("--batch-size", type=whole_number(1), default=DEFAULT_BATCH_SIZE,
                        help=f"tasks per run of (c) and of the same steps without Dagster (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--pairs", type=whole_number(1), default=1,
                        help="time (a) and (c)'s migrate this many times, alternating which goes first, and judge "
                             "issue 20's ratio by its worst pair (default 1)")
    parser.add_argument("--baseline", metavar="BENCH_JSON",
                        help="a smaller corpus's bench.json: judge (c)'s throughput and peak memory against it")
    parser.add_argument("--num-signals", action="append", nargs="?", const="1000,10000,100000", metavar="N[,N...]",
                        help="instead: the store's bytes vs the JSON and zstd -19 for tasks of N signals each "
                             "(repeatable or comma-separated; bare: 1000,10000,100000); sizes.py")
    app = parser.add_argument_group("--app: the application's save/get in the three modes (app_life.py)")
    app.add_argument("--app", action="store_true", help="run the application bench instead of the migration bench")
    app.add_argument("--app-saves", type=whole_number(1), default=10_000, help="100-signal saves (default 10000)")
    app.add_argument("--app-bulk", type=whole_number(1), default=1_000, help="tasks in the bulk read (default 1000)")
    app.add_argument("--app-reads", type=whole_number(1), default=50, help="get_result calls per figure (default 50)")
    app.add_argument("--app-large-tasks", type=whole_number(0), default=3, help="tasks over 1 MB (default 3)")
    app.add_argument("--app-large-signals", type=whole_number(1), default=4_000, help="signals per large task")
    app.add_argument("--app-modes", default="json-only,dual-write,postgres-only", help="modes to run (default all)")
    app.add_argument("--app-no-dagster", action="store_true", help="record_in_dagster=False: saves queue no Dagster record (by default each queues one in "
                          "its transaction; their report to Dagster, a run of its own, is timed apart)")
    soak = parser.add_argument_group(
        "--soak: application processes saving and reading while migrate and maintain loop, on one store (soak.py)",
        "Prints a table, writes <workdir>/soak.json. Exit 1 if a save or a read failed (a read must be exactly the "
        "last save), a task was lost (missing or not exactly its last save), shown twice or short in a scan, rows "
        "were foreign, a migrate or maintain run failed or none succeeded, a process died or was left running, or "
        "nothing was done to judge; else 0.")
    soak.add_argument("--soak", action="store_true", help="run the soak instead of the migration bench")
    soak.add_argument("--soak-seconds", type=whole_number(1), default=600, help="how long (default 600)")
    soak.add_argument("--soak-processes", type=whole_number(1), default=4,
                      help="application processes, postgres-only (default 4)")
    soak.add_argument("--soak-legacy-tasks", type=whole_number(1), default=20,
                      help="tasks in the legacy corpus the migrate loop migrates (default 20)")


def run(args) -> int:
    from result_assets.errors import UsageError

    if args.app:
        return run_app(args)
    if args.soak:
        from benchmarks.soak import SoakParams, run_soak

        params = SoakParams(processes=args.soak_processes, seconds=args.soak_seconds,
                            legacy_tasks=args.soak_legacy_tasks, seed=args.seed)
        return run_soak(Path(args.workdir).absolute(), params)
    if args.num_signals:
        from benchmarks.sizes import run_sizes

        return run_sizes(args)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    from benchmarks.runner import CONTENDERS, Bench, read_baseline

    unknown = sorted(set(only) - set(CONTENDERS))
    if unknown:
        raise UsageError(f"--only takes {','.join(CONTENDERS)}; unknown: {', '.join(unknown)}")
    if args.baseline:
        read_baseline(args.baseline)  # before the corpus is made, not after the bench has run

    bench = Bench(Path(args.workdir).absolute(), args)
    try:
        return bench.run(only)
    finally:
        bench.stop_servers()


def run_app(args) -> int:
    from benchmarks.app_life import MODES, Params, run_app_life
    from result_assets.errors import UsageError

    modes = tuple(m.strip() for m in args.app_modes.split(",") if m.strip())
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UsageError(f"--app-modes takes {', '.join(MODES)}; unknown: {', '.join(unknown)}")
    params = Params(saves=args.app_saves, bulk=args.app_bulk, reads=args.app_reads, large_tasks=args.app_large_tasks,
                    large_signals=args.app_large_signals, seed=args.seed,
                    record_in_dagster=not args.app_no_dagster, modes=modes)
    return run_app_life(Path(args.workdir).absolute(), params)
