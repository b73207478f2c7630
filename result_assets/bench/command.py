"""`result-assets bench`: arguments, and the entry the CLI calls (the bench itself is runner.py).

Kept import-light: the CLI builds every subcommand's parser on each invocation.
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    from result_assets.cli import whole_number

    parser.add_argument("--tasks", type=whole_number(0), default=2000, help="ordinary tasks in the corpus (default 2000)")
    parser.add_argument("--huge", type=whole_number(0), default=3, help="tasks of 100k signals (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", default="bench-work", help="corpus, outputs and bench.json (default ./bench-work)")
    parser.add_argument("--only", default="a,b,c,d", help="contenders to run, of a,b,c,d (default all)")
    parser.add_argument("--scale", action="store_true", help="also time 100k partitions, dry run and status")
    parser.add_argument("--scale-tasks", type=whole_number(0), default=100_000, help="tasks for --scale (default 100000)")
    parser.add_argument("--batch-size", type=whole_number(1), default=50)


def run(args) -> int:
    from result_assets.cli import CliError

    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = sorted(set(only) - {"a", "b", "c", "d"})
    if unknown:
        raise CliError(f"--only takes a,b,c,d; unknown: {', '.join(unknown)}")
    from result_assets.bench.runner import Bench

    bench = Bench(Path(args.workdir).absolute(), args)
    try:
        return bench.run(only)
    finally:
        bench.stop_servers()
