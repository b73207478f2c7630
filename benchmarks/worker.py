"""One contender in its own process: `python -m benchmarks.worker NAME '<json config>'`.

Prints its result as the last stdout line (see measure.emit); the parent measures time and memory.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from benchmarks.measure import corpus_files, emit


def main(argv: list[str]) -> int:
    warnings.simplefilter("ignore")
    name, config = argv[0], json.loads(argv[1])
    corpus = Path(config["corpus"]) if "corpus" in config else None
    if name == "naive":
        from benchmarks import naive

        emit(naive.run(corpus_files(corpus), Path(config["out"]), config["db_url"]))
    elif name in ("dlt_postgres", "dlt_parquet"):
        from benchmarks import dlt_loader

        destination = name.split("_", 1)[1]
        emit(dlt_loader.run(corpus_files(corpus), Path(config["out"]), destination, config.get("db_url")))
    elif name == "converter":
        from benchmarks.project import converter

        emit(converter(corpus, Path(config["out"])))
    elif name == "converter_speed":  # a process of its own: not in the (d) row's time
        from benchmarks.project import largest_task_speed

        emit(largest_task_speed(corpus_files(corpus)))
    elif name == "plain_steps":
        from benchmarks.project import plain_steps

        emit(plain_steps(corpus, config["batch"]))
    elif name == "inspect":
        from benchmarks.project import inspect_migration

        valid = [t for t, e in json.loads(Path(config["expect"]).read_text())["expect"].items() if e["valid"]]
        emit(inspect_migration(corpus, Path(config["export_dir"]), valid))
    elif name == "scale_register":
        from benchmarks.scale import register

        emit(register(config["n"]))
    elif name == "scale_catalog":
        from benchmarks.scale import fill_catalog

        emit(fill_catalog(Path(config["tree"]), config["n"]))
    else:
        print(f"unknown contender {name!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
