"""`result-assets bench --num-signals N[,N...]`: the store's bytes per task size.

For each size, a few generated tasks of exactly N signals (benchmarks.corpus, the
huge-task shape: one task of N signals split over 1-3 symbols, curves beside them) are
migrated on a fresh RESULT_ASSETS_HOME by the real `result-assets migrate`, then
`result-assets maintain`; the store is measured as `store_report` counts it (Delta data
files, Delta logs, catalog rows, hot tier) and set against zstd -19 of each JSON file.
Prints one markdown table and writes sizes.json in --workdir.

Where a store's bytes go (docs/performance.md), for any store root:

    python -m benchmarks.sizes columns $RESULT_ASSETS_HOME/store
    python -m benchmarks.sizes floor $RESULT_ASSETS_HOME/store
    python -m benchmarks.sizes sweep $RESULT_ASSETS_HOME/store   # the alternatives to writer_properties
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

DEFAULT_SIZES = (1_000, 10_000, 100_000)
MIN_TASKS = 2  # tasks per size, at least
MIN_JSON_BYTES = 6_000_000  # ... and enough of them for a few MB of JSON
BYTES_PER_SIGNAL = 400  # rough JSON bytes of one generated signal, to size the task count
GOAL_RATIO = 0.90


def parse_sizes(values: list[str]) -> list[int]:
    """`--num-signals` values (repeatable, each comma-separated) as sizes, in order, once each."""
    from result_assets.errors import UsageError

    sizes: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip().replace("_", "")
            if not part:
                continue
            if part.lower().endswith("k") and part[:-1].isdigit():
                part = str(int(part[:-1]) * 1000)
            if not part.isdigit() or int(part) < 1:
                raise UsageError(f"--num-signals takes whole numbers of at least 1 (1000,10000,100000), not {part!r}")
            if int(part) not in sizes:
                sizes.append(int(part))
    return sizes or list(DEFAULT_SIZES)


def tasks_for(n_signals: int) -> int:
    return max(MIN_TASKS, math.ceil(MIN_JSON_BYTES / (n_signals * BYTES_PER_SIGNAL)))


def run_sizes(args) -> int:
    sizes = parse_sizes(args.num_signals)
    workdir = Path(args.workdir).absolute() / "sizes"
    workdir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    started = time.perf_counter()
    for n in sizes:
        row = measure_size(workdir / str(n), n, seed=args.seed)
        rows.append(row)
        if not row["ok"]:
            failed.append(n)
    table = markdown(rows)
    print(table, flush=True)
    out = Path(args.workdir).absolute() / "sizes.json"
    out.write_text(json.dumps({
        "command": "result-assets bench --num-signals " + ",".join(map(str, sizes)) + f" --seed {args.seed}",
        "seed": args.seed, "cores": os.cpu_count(), "seconds": round(time.perf_counter() - started, 1),
        "rows": rows, "table": table}, indent=1))
    say(f"wrote {out}")
    if failed:
        say(f"FAILED for {', '.join(map(str, failed))} signals: see {workdir}/<size>/logs")
        return 1
    return 0


def measure_size(folder: Path, n_signals: int, *, seed: int) -> dict:
    from benchmarks.measure import fresh_home, home_env, last_json, run_measured, stop_home

    n_tasks = tasks_for(n_signals)
    corpus = prepare_corpus(folder, n_signals, n_tasks, seed)
    files = sorted(corpus.glob("*/result.json"))
    json_bytes = sum(p.stat().st_size for p in files)
    say(f"{n_signals:,} signals: {n_tasks} tasks, {json_bytes / 1e6:.1f} MB of JSON")
    zstd = zstd19_per_file(folder, files)
    home = fresh_home(folder / "home")
    env = home_env(home)
    cli = [sys.executable, "-m", "result_assets.cli"]
    row = {"signals_per_task": n_signals, "tasks": n_tasks, "json_bytes": json_bytes,
           "zstd19_bytes": zstd["bytes"], "zstd19_ratio": round(1 - zstd["bytes"] / json_bytes, 4),
           "zstd19_seconds": zstd["seconds"], "ok": False}
    try:
        say(f"  migrating (fresh home {home}) ...")
        migrate = run_measured(cli + ["migrate", "--source-dir", str(corpus), "--json"], folder / "logs" / "migrate.log",
                               env=env)
        report = last_json(migrate.stdout)
        row.update(seconds=round(migrate.seconds, 2), peak_rss_mb=round(migrate.peak_rss_mb, 1),
                   migrate_report=report, stored_bytes_before_maintain=report.get("stored_bytes"))
        if migrate.returncode != 0 or report.get("migrated") != n_tasks or report.get("failed_checks"):
            say(f"  migrate failed (exit {migrate.returncode}): {migrate.log.strip().splitlines()[-1:]}")
            return row
        maintain = run_measured(cli + ["maintain", "--json"], folder / "logs" / "maintain.log", env=env)
        row["maintain_seconds"] = round(maintain.seconds, 2)
        if maintain.returncode != 0:
            say(f"  maintain failed (exit {maintain.returncode}): {maintain.log.strip().splitlines()[-1:]}")
            return row
        store = measure_store(home)
        row.update(store)
        row["ratio"] = round(1 - store["stored_bytes"] / json_bytes, 4)
        row["ok"] = True
        say(f"  {row['ratio']:.1%} smaller (zstd -19 {row['zstd19_ratio']:.1%}), migrate {row['seconds']:.1f}s")
        return row
    finally:
        stop_home(home)


def prepare_corpus(folder: Path, n_signals: int, n_tasks: int, seed: int) -> Path:
    """K tasks of n_signals each, generated once per (size, tasks, seed) and kept for the next run."""
    from benchmarks.corpus import generate_corpus

    corpus = folder / "corpus"
    marker = folder / "corpus.json"
    params = {"signals": n_signals, "tasks": n_tasks, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()).get("params") == params and corpus.is_dir():
        return corpus
    shutil.rmtree(corpus, ignore_errors=True)
    say(f"generating {n_tasks} tasks of {n_signals:,} signals ...")
    generate_corpus(corpus, 0, seed=seed * 1_000_003 + n_signals, huge_tasks=n_tasks, huge_signals=n_signals,
                    bad_per_kind=0)
    marker.write_text(json.dumps({"params": params}))
    (folder / "zstd19.json").unlink(missing_ok=True)
    return corpus


def zstd19_per_file(folder: Path, files: list[Path]) -> dict:
    """zstd -19 of each file on its own (one thread), summed; kept beside the corpus."""
    import zstandard

    cache = folder / "zstd19.json"
    if cache.exists():
        return json.loads(cache.read_text())
    say(f"  zstd -19 of each of {len(files)} files ...")
    compressor = zstandard.ZstdCompressor(level=19)
    started = time.perf_counter()
    total = sum(len(compressor.compress(p.read_bytes())) for p in files)
    result = {"bytes": total, "seconds": round(time.perf_counter() - started, 1)}
    cache.write_text(json.dumps(result))
    return result


def measure_store(home: Path) -> dict:
    """store_report's figures, and what the float64 leaves of the data files cost per value."""
    import pyarrow.parquet as pq

    from result_assets.migration.summary import store_report
    from result_assets.store.delta_tables import CURVES, SIGNALS
    from result_assets.store.stores import Stores

    from benchmarks.measure import home_settings

    stores = Stores(home_settings(home), readonly=True)
    try:
        report = store_report(stores)
    finally:
        stores.catalog.close()
    float_bytes = float_values = 0
    for table in (SIGNALS, CURVES):
        dt = stores.delta.open(table)
        for uri in dt.file_uris() if dt is not None else ():
            meta = pq.ParquetFile(uri).metadata
            for i in range(meta.num_row_groups):
                group = meta.row_group(i)
                for j in range(group.num_columns):
                    column = group.column(j)
                    if column.physical_type == "DOUBLE":
                        float_bytes += column.total_compressed_size
                        nulls = column.statistics.null_count if column.statistics and column.statistics.has_null_count else 0
                        float_values += column.num_values - nulls
    keys = ("stored_bytes", "signal_table_bytes", "curve_table_bytes", "delta_log_bytes", "skeleton_bytes", "catalog_bytes",
            "hot_bytes", "delta_files", "signals", "curve_points")
    return {**{k: report[k] for k in keys}, "float64_bytes": float_bytes, "float64_values": float_values}


def markdown(rows: list[dict]) -> str:
    lines = [("| signals per task | tasks | JSON bytes | stored bytes | smaller | zstd -19 per file | "
              "float64 B/value | migrate s |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r["ok"]:
            lines.append(f"| {r['signals_per_task']:,} | {r['tasks']} | {r['json_bytes']:,} | FAILED | | "
                         f"{r['zstd19_ratio']:.1%} | | {r.get('seconds', '')} |")
            continue
        per_value = r["float64_bytes"] / r["float64_values"] if r["float64_values"] else float("nan")
        lines.append(f"| {r['signals_per_task']:,} | {r['tasks']} | {r['json_bytes']:,} | {r['stored_bytes']:,} | "
                     f"{r['ratio']:.1%} | {r['zstd19_ratio']:.1%} | {per_value:.2f} | {r['seconds']:.1f} |")
    lines.append("")
    lines.append(f"stored bytes: Delta data files + Delta logs + catalog rows + hot tier, after `maintain`; "
                 f"goal: >= {GOAL_RATIO:.0%} smaller and smaller than zstd -19 of each file.")
    for r in rows:
        if r["ok"]:
            verdict = ("PASS" if r["ratio"] >= GOAL_RATIO and r["stored_bytes"] < r["zstd19_bytes"] else
                       "MISS" if r["ratio"] < GOAL_RATIO else "MISS (zstd -19 smaller)")
            lines.append(f"- {r['signals_per_task']:,}: {verdict}: {r['ratio']:.1%} smaller; zstd -19 "
                         f"{r['zstd19_ratio']:.1%}; logs {r['delta_log_bytes']:,} B, catalog rows "
                         f"{r['catalog_bytes']:,} B, float64 columns {r['float64_bytes']:,} B of "
                         f"{r['stored_bytes']:,}")
    return "\n".join(lines)


# --- where the bytes go ------------------------------------------------------------------


def column_bytes(store_root: str) -> str:
    """Compressed bytes of each column of each table's current files, from the Parquet footers."""
    from collections import Counter

    import pyarrow.parquet as pq

    from result_assets.store.delta_tables import CURVES, SIGNALS, DeltaStore

    store = DeltaStore(store_root)
    lines = ["| table | column | bytes | B/row | encodings |", "|---|---|---:|---:|---|"]
    for table in (SIGNALS, CURVES):
        dt = store.open(table)
        if dt is None:
            continue
        sizes, encodings, rows, total = Counter(), {}, 0, 0
        for uri in dt.file_uris():
            meta = pq.ParquetFile(uri).metadata
            rows += meta.num_rows
            total += os.path.getsize(uri) if os.path.exists(uri) else 0
            for i in range(meta.num_row_groups):
                group = meta.row_group(i)
                for j in range(group.num_columns):
                    column = group.column(j)
                    sizes[column.path_in_schema] += column.total_compressed_size
                    encodings[column.path_in_schema] = "/".join(e for e in column.encodings if e != "RLE")
        for name, size in sizes.most_common():
            lines.append(f"| {table} | {name} | {size:,} | {size / max(rows, 1):.2f} | {encodings[name]} |")
        lines.append(f"| {table} | (footers) | {total - sum(sizes.values()):,} | | |")
        lines.append(f"| {table} | Delta log | {store.log_bytes(table):,} | | |")
    return "\n".join(lines)


def float_floor(store_root: str) -> str:
    """Per float64 column: order-0 entropy of each byte of the values (low to high), and the
    bytes per value of byte_stream_split + zstd -19 over the whole column (no pages)."""
    import numpy as np
    import pyarrow.compute as pc
    import zstandard

    from result_assets.store.delta_tables import CURVES, SIGNALS, DeltaStore

    def entropy(stream) -> float:
        counts = np.bincount(stream, minlength=256).astype(float)
        p = counts[counts > 0] / counts.sum()
        return float(-(p * np.log2(p)).sum()) + 0.0  # not -0.0

    zstd = zstandard.ZstdCompressor(level=19)
    store = DeltaStore(store_root)
    lines = ["| column | values | bits of entropy per byte, low to high | sum, B/value | BSS + zstd -19, B/value |",
             "|---|---:|---|---:|---:|"]
    for table in (SIGNALS, CURVES):
        dt = store.open(table)
        if dt is None:
            continue
        rows = dt.to_pyarrow_table()
        rows = rows.sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"), ("seq", "ascending")])
        for field in rows.schema:
            if str(field.type) == "double":
                values = rows.column(field.name)
            elif str(field.type).startswith("map<") and str(field.type).endswith("double>"):
                values = rows.column(field.name).combine_chunks().items
            else:
                continue
            floats = np.asarray(pc.drop_null(values).to_numpy(zero_copy_only=False), dtype=np.float64)
            if not len(floats):
                continue
            planes = floats.view(np.uint8).reshape(len(floats), 8)
            bits = [entropy(np.ascontiguousarray(planes[:, k])) for k in range(8)]
            bss = sum(len(zstd.compress(np.ascontiguousarray(planes[:, k]).tobytes())) for k in range(8))
            lines.append(f"| {table}.{field.name} | {len(floats):,} | {' '.join(f'{b:.2f}' for b in bits)} | "
                         f"{sum(bits) / 8:.2f} | {bss / len(floats):.2f} |")
    return "\n".join(lines)


def encoding_sweep(store_root: str, scratch: str) -> str:
    """Each table's rows written again (sorted as replace_tasks sorts them) with writer_properties and
    with one alternative at a time; compressed bytes per column and write seconds of each."""
    from collections import Counter

    import pyarrow.parquet as pq
    from deltalake import ColumnProperties, WriterProperties, write_deltalake

    from result_assets.store import delta_tables as dtm

    def enc(name: str) -> ColumnProperties:
        return ColumnProperties(dictionary_enabled=True) if name == "dictionary" else \
            ColumnProperties(dictionary_enabled=False, encoding=name)

    ints = ("ts", "exit_ts", "seq", "holding_bars")
    strings = ("task_id", "symbol", "type", "reason", "extras")
    variants = {  # name: (column overrides, map leaves' dictionary, zstd level, row group rows: None, the table's)
        "chosen": ({}, False, dtm.ZSTD_LEVEL, None),
        "floats plain": ({c: enc("PLAIN") for c in dtm._FLOAT_COLUMNS}, False, dtm.ZSTD_LEVEL, None),
        "floats dictionary": ({c: enc("dictionary") for c in dtm._FLOAT_COLUMNS}, False, dtm.ZSTD_LEVEL, None),
        "ints plain": ({c: enc("PLAIN") for c in ints}, False, dtm.ZSTD_LEVEL, None),
        "ints delta": ({c: enc("DELTA_BINARY_PACKED") for c in ints}, False, dtm.ZSTD_LEVEL, None),
        "ints BSS": ({c: enc("BYTE_STREAM_SPLIT") for c in ints}, False, dtm.ZSTD_LEVEL, None),
        "ints dictionary": ({c: enc("dictionary") for c in ints}, False, dtm.ZSTD_LEVEL, None),
        "strings plain": ({c: enc("PLAIN") for c in strings}, False, dtm.ZSTD_LEVEL, None),
        "strings delta": ({c: enc("DELTA_BYTE_ARRAY") for c in strings}, False, dtm.ZSTD_LEVEL, None),
        "map dictionary": ({}, True, dtm.ZSTD_LEVEL, None),
        **{f"zstd {level}": ({}, False, level, None) for level in (3, 12, 15, 19)},
        "row groups 64k": ({}, False, dtm.ZSTD_LEVEL, 64 * 1024),
    }
    out = []
    for table in (dtm.SIGNALS, dtm.CURVES):
        dt = dtm.DeltaStore(store_root).open(table)
        if dt is None:
            continue
        rows = dt.to_pyarrow_table().sort_by([("task_id", "ascending"), ("symbol_idx", "ascending"),
                                              ("seq", "ascending")])
        results = {}
        for name, (overrides, map_dictionary, level, group_rows) in variants.items():
            columns = dict(dtm.writer_properties(table, rows.schema).column_properties or {})
            columns.update({c: p for c, p in overrides.items() if c in rows.schema.names})
            properties = WriterProperties(compression="ZSTD", compression_level=level,
                                          max_row_group_size=group_rows or dtm.ROW_GROUP_ROWS[table],
                                          column_properties=columns,
                                          default_column_properties=ColumnProperties(dictionary_enabled=map_dictionary))
            path = os.path.join(scratch, table)
            shutil.rmtree(path, ignore_errors=True)
            started = time.perf_counter()
            write_deltalake(path, rows, mode="overwrite", writer_properties=properties)
            seconds = time.perf_counter() - started
            sizes = Counter()
            for uri in dtm.DeltaStore(scratch).open(table).file_uris():
                meta = pq.ParquetFile(uri).metadata
                for i in range(meta.num_row_groups):
                    for j in range(meta.row_group(i).num_columns):
                        column = meta.row_group(i).column(j)
                        sizes[column.path_in_schema.replace(".entries.", ".key_value.")] += column.total_compressed_size
            results[name] = (sizes, seconds)
            shutil.rmtree(path, ignore_errors=True)
        names = list(variants)
        out += [f"**{table}** ({rows.num_rows:,} rows): compressed bytes per column", "",
                "| column | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for column in results["chosen"][0]:
            out.append(f"| {column} | " + " | ".join(f"{results[n][0].get(column, 0):,}" for n in names) + " |")
        out.append("| **all** | " + " | ".join(f"{sum(results[n][0].values()):,}" for n in names) + " |")
        out.append("| write s | " + " | ".join(f"{results[n][1]:.2f}" for n in names) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.sizes", description="where a store's bytes go")
    parser.add_argument("what", choices=["columns", "floor", "sweep"])
    parser.add_argument("store_root", help="the Delta tables' root, e.g. $RESULT_ASSETS_HOME/store")
    parser.add_argument("--scratch", help="sweep: where the trial tables go (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.what == "sweep":
        import tempfile

        with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
            print(encoding_sweep(args.store_root, scratch))
    else:
        print(column_bytes(args.store_root) if args.what == "columns" else float_floor(args.store_root))
    return 0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
