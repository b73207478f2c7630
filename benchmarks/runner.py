"""The bench itself: contenders (a)-(d) side by side on one generated corpus, plus --scale.

Every contender runs in its own child process against its own fresh output (a
database, a folder or a RESULT_ASSETS_HOME), so its wall time and peak RSS are its own.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from benchmarks.measure import (
    Measured,
    corpus_files,
    create_instance,
    fresh_database,
    fresh_home,
    home_env,
    home_settings,
    last_json,
    relation_bytes,
    run_measured,
    stop_home,
    table_rows,
    tree_bytes,
    worker_argv,
    write_stock_dagster_yaml,
    write_tuned_dagster_yaml,
)

CONTENDERS = ("a", "b", "c", "d", "s", "t")
ZSTD_SAMPLE_BYTES = 16 * 1024 * 1024  # zstd -19 runs at a few MB/s: larger corpora are sampled (stratified)
HUGE_FILE_BYTES = 10 * 1024 * 1024


class Bench:
    def __init__(self, workdir: Path, args):
        self.workdir = workdir
        self.args = args
        self.corpus = workdir / "corpus"
        self.homes: list[Path] = []
        self.rows: list[dict] = []
        self.extra: dict = {}
        self.targets: list[dict] = []
        self.loads: dict[str, tuple[float, float]] = {}

    # --- orchestration ---

    def run(self, only: list[str]) -> int:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare_corpus()
        files = corpus_files(self.corpus)
        self.json_bytes = sum(p.stat().st_size for _, p in files)
        self.n_tasks = len(files)
        self.say(f"corpus: {self.n_tasks} tasks, {self.json_bytes / 1e6:.1f} MB of JSON ({self.corpus})")
        if "a" in only or "b" in only:
            self.server = self.server_of(self.fresh_home("bench"))
        if "a" in only:
            self.contender_a()
        if "b" in only:
            self.contender_b()
        if "c" in only:
            self.contender_c()
        if "s" in only:
            self.contender_stock()
        if "t" in only:
            self.contender_tuned()
        if "d" in only:
            self.contender_d()
        if "a" in only and "c" in only:
            self.more_pairs()
        self.zstd_reference()
        if self.args.scale:
            self.scale()
        self.judge()
        self.report()
        return 0

    def prepare_corpus(self) -> None:
        """Generate the corpus, or reuse the one already there for the same parameters."""
        from benchmarks.corpus import generate_corpus

        params = {"tasks": self.args.tasks, "huge": self.args.huge, "seed": self.args.seed}
        marker = self.workdir / "corpus.json"
        if marker.exists() and json.loads(marker.read_text()).get("params") == params and self.corpus.is_dir():
            return
        shutil.rmtree(self.corpus, ignore_errors=True)
        self.say(f"generating the corpus ({params}) ...")
        started = time.perf_counter()
        expect = generate_corpus(self.corpus, self.args.tasks, seed=self.args.seed, huge_tasks=self.args.huge)
        marker.write_text(json.dumps({"params": params, "expect": expect}, ensure_ascii=False))
        self.say(f"  generated in {time.perf_counter() - started:.1f}s")

    # --- homes and servers ---

    def fresh_home(self, name: str) -> Path:
        """An empty RESULT_ASSETS_HOME whose embedded Postgres is already running (start-up is not timed)."""
        home = fresh_home(self.workdir / "homes" / name)
        self.homes.append(home)
        return home

    def server_of(self, home: Path) -> str:
        from result_assets.store.postgres import server_url

        return server_url(home_settings(home))

    def stop_servers(self) -> None:
        for home in self.homes:
            stop_home(home)

    def env_for(self, home: Path) -> dict:
        return home_env(home)

    def measure(self, name: str, argv: list[str], env: dict | None = None) -> Measured:
        self.say(f"running {name} ...")
        load_before = os.getloadavg()[0]
        m = run_measured(argv, self.workdir / "logs" / f"{name}.log", env=env)
        # Other work on the machine skews every figure: keep the load beside each one.
        self.loads[name] = (round(load_before, 2), round(os.getloadavg()[0], 2))
        status = "ok" if m.returncode == 0 else f"FAILED (exit {m.returncode}, see logs/{name}.log)"
        self.say(f"  {name}: {m.seconds:.1f}s, peak RSS {m.peak_rss_mb:.0f} MB, load average "
                 f"{self.loads[name][0]} -> {self.loads[name][1]}, {status}")
        if m.returncode != 0:
            self.say("  " + "\n  ".join(m.log.strip().splitlines()[-5:]))
        return m

    def cli(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "result_assets.cli", *argv]

    def row(self, key: str, label: str, m: Measured, stored_bytes: int | None, note: str = "") -> dict:
        row = {"key": key, "contender": label, "seconds": round(m.seconds, 2), "peak_rss_mb": round(m.peak_rss_mb, 1),
               "stored_bytes": stored_bytes, "ok": m.returncode == 0, "note": note, "detail": m.result,
               "cpu_seconds": round(m.cpu_seconds, 2), "cpu_utilisation": round(m.cpu_utilisation, 3),
               "machine_busy": None if m.machine_busy is None else round(m.machine_busy, 3)}
        self.rows.append(row)
        return row

    # --- the contenders ---

    def contender_a(self) -> None:
        from benchmarks.naive import SUMMARY_TABLE

        m, db, out = self.naive_measured("a_naive")
        stored = tree_bytes(out)[0] + relation_bytes(db, tables=[SUMMARY_TABLE]) if m.returncode == 0 else None
        r = m.result
        note = (f"{r.get('tasks_stored')} tasks stored; {r.get('unreadable')} files unreadable "
                f"({', '.join(f'{k} x{v}' for k, v in r.get('errors', {}).items())}); "
                f"{r.get('retried_as_text')} tasks refused by to_parquet (mixed-type columns) and "
                "written again with those columns as text") if r else ""
        self.row("a", "(a) naive: json.load + json_normalize + to_parquet + INSERT", m, stored, note)

    def more_pairs(self) -> None:
        """(a)'s and (c)'s migrate timed again (--pairs), alternating which goes first, each (c)
        on a fresh home with its instance made before the clock: the machine's speed moves by
        as much as issue 20's margin, so one pair cannot say met or missed."""
        rows = {r["key"]: r for r in self.rows}
        if not (rows["a"]["ok"] and rows["c"]["ok"]):
            return
        pairs = [(rows["a"]["seconds"], rows["c"]["seconds"])]
        for k in range(1, getattr(self.args, "pairs", 1)):
            seconds = {}
            for which in ("c", "a") if k % 2 else ("a", "c"):
                if which == "a":
                    m = self.naive_measured(f"a_pair{k}", f"_{k}")[0]
                else:
                    home = self.fresh_home(f"migrate_pair{k}")
                    create_instance(home)
                    m = self.measure(f"c_pair{k}", self.migrate_argv(), self.env_for(home))
                    stop_home(home)  # no idle server beside the pairs timed after it
                if m.returncode != 0:
                    self.say(f"  pair {k} failed: judged by the {len(pairs)} before it")
                    self.extra["pairs"] = pairs
                    return
                seconds[which] = round(m.seconds, 2)
            pairs.append((seconds["a"], seconds["c"]))
        self.extra["pairs"] = pairs

    def naive_measured(self, name: str, suffix: str = "") -> tuple[Measured, str, Path]:
        """(a)'s script timed once into a fresh database and folder: (measured, db URL, folder)."""
        db = fresh_database(self.server, f"bench_naive{suffix}")
        out = self.fresh_dir(f"naive_parquet{suffix}")
        return self.measure(name, worker_argv("naive", {"corpus": str(self.corpus), "out": str(out), "db_url": db})), \
            db, out

    def migrate_argv(self) -> list[str]:
        """(c)'s command: the CLI's migrate of the corpus, in batches of --batch-size."""
        return self.cli("migrate", "--source-dir", str(self.corpus), "--batch-size", str(self.args.batch_size),
                        "--json")

    def contender_b(self) -> None:
        db = fresh_database(self.server, "bench_dlt")
        m = self.measure("b_dlt_postgres", worker_argv(
            "dlt_postgres", {"corpus": str(self.corpus), "out": str(self.fresh_dir("dlt_postgres")), "db_url": db}))
        stored = relation_bytes(db, schemas=["legacy"]) if m.returncode == 0 else None
        if m.returncode == 0:  # dlt's normalize row counts over-count with rotated csv files: ask the tables
            m.result["row_counts"] = table_rows(db, "legacy")
        self.row("b_pg", "(b) dlt -> Postgres (csv/COPY)", m, stored, self._dlt_note(m))
        out = self.fresh_dir("dlt_parquet")
        m = self.measure("b_dlt_parquet", worker_argv("dlt_parquet", {"corpus": str(self.corpus), "out": str(out)}))
        stored = tree_bytes(out / "bucket")[0] if m.returncode == 0 else None
        self.row("b_fs", "(b) dlt -> Parquet files", m, stored, self._dlt_note(m))

    def _dlt_note(self, m: Measured) -> str:
        counts = m.result.get("row_counts", {})
        return ", ".join(f"{t}: {n}" for t, n in sorted(counts.items()) if not t.startswith("_dlt")) if counts else ""

    def contender_c(self) -> None:
        home = self.fresh_home("migrate")
        env = self.env_for(home)
        # A team's instance already exists (issue 20): its tables are created before the clock starts.
        self.extra["instance_create_seconds"] = create_instance(home)
        m = self.measure("c_migrate", self.migrate_argv(), env)
        report = last_json(m.stdout)
        rerun = self.measure("c_rerun", self.migrate_argv(), env)
        rerun_report = last_json(rerun.stdout)
        export_dir = self.fresh_dir("migrate_export")
        export = self.measure("c_export", self.cli("export", "--out", str(export_dir)), env)
        inspect = self.measure("c_inspect", worker_argv("inspect", {
            "corpus": str(self.corpus), "export_dir": str(export_dir), "expect": str(self.workdir / "corpus.json")}),
            env)
        plain_home = self.fresh_home("plain_steps")
        plain = self.measure("c_plain_steps",
                             worker_argv("plain_steps", {"corpus": str(self.corpus), "batch": self.args.batch_size}),
                             self.env_for(plain_home))
        one = self.one_huge_task()
        one_m = None
        if one:
            one_m = self.measure("c_one_huge_task", self.cli("migrate", "--source-dir", str(one), "--json"),
                                 self.env_for(self.fresh_home("one_huge")))
        info = inspect.result
        after = info.get("after", {})
        stored = after.get("stored_bytes", report.get("stored_bytes"))
        self.row("c", "(c) result-assets migrate (Dagster on stock dagster-postgres storage, backups, checks, "
                 "catalog)", m, stored,
                 f"{report.get('migrated', '?')} migrated, {report.get('quarantined', '?')} quarantined, "
                 f"{report.get('runs', '?')} runs; stored = Delta tables after store_maintenance")
        n = self.n_tasks
        plain_s = plain.result.get("work_seconds")
        run_s = info.get("run_seconds")
        self.extra["c"] = {
            "report": report, "rerun_report": rerun_report,
            "rerun_seconds": rerun.seconds, "rerun_tasks_per_s": n / rerun.seconds,
            "rerun_in_command_seconds": rerun_report.get("seconds"),
            "export_seconds": export.seconds, "export_ok": export.returncode == 0,
            "inspect": info, "plain_steps_seconds": plain_s,
            "one_huge_task_peak_rss_mb": one_m.peak_rss_mb if one_m else None,
            "one_huge_task_seconds": one_m.seconds if one_m else None,
            "bookkeeping_ms_per_task_asset": (
                (run_s - plain_s) * 1000 / (n * 5) if run_s is not None and plain_s is not None and n else None),
            "bookkeeping_upper_ms_per_task_asset": (
                (m.seconds - plain_s) * 1000 / (n * 5) if plain_s is not None and n else None),
            # Where the command's wall went besides its runs: the time before the first run
            # began (Dagster imported, the instance and definitions built, the first batches
            # converting meanwhile) and after the last ended (the report, the exit).
            "before_first_run_seconds": (info["first_run_started_at"] - m.started_at
                                         if info.get("first_run_started_at") else None),
            "after_last_run_seconds": (m.started_at + m.seconds - info["last_run_ended_at"]
                                       if info.get("last_run_ended_at") else None),
        }

    def contender_stock(self) -> None:
        """(c) in an instance a team already has: a dagster.yaml of its own that says
        `storage: postgres:` with the URL in it (stock dagster-postgres), nothing of the project's."""
        self.contender_in_instance("s", "c_stock", "(c) with a team's own dagster.yaml (stock dagster-postgres "
                                   "storage: postgres:)", write_stock_dagster_yaml)

    def contender_tuned(self) -> None:
        """(c) on the project's opt-in tuned storage (pooled event log, batched check evaluations):
        what an instance of its own could gain; no target depends on it."""
        self.contender_in_instance("t", "c_tuned", "(c) on the opt-in tuned storage (dagster.yaml storage: "
                                   "custom: ResultAssetsStorage)", write_tuned_dagster_yaml)

    def contender_in_instance(self, key: str, name: str, label: str, write_dagster_yaml) -> None:
        """(c)'s migrate on a fresh home whose dagster.yaml write_dagster_yaml(home) wrote."""
        home = self.fresh_home(f"migrate_{name.removeprefix('c_')}")  # homes/migrate_stock, migrate_tuned
        write_dagster_yaml(home)
        create_instance(home)
        m = self.measure(name, self.migrate_argv(), self.env_for(home))
        report = last_json(m.stdout)
        self.row(key, label, m, report.get("stored_bytes"), f"{report.get('migrated', '?')} migrated, "
                 f"{report.get('quarantined', '?')} quarantined, {report.get('runs', '?')} runs")

    def one_huge_task(self) -> Path | None:
        """A tree holding only the corpus's largest task (copied: migrate refuses links leaving the tree)."""
        files = corpus_files(self.corpus)
        if not files:
            return None
        task_id, path = max(files, key=lambda f: f[1].stat().st_size)
        root = self.fresh_dir("one_huge_tree")
        (root / task_id).mkdir()
        shutil.copyfile(path, root / task_id / "result.json")
        return root

    def contender_d(self) -> None:
        out = self.fresh_dir("converter_store")
        m = self.measure("d_converter", worker_argv("converter", {"corpus": str(self.corpus), "out": str(out)}))
        # The largest task's conversions, best of three, in a process of their own: in (d)'s they
        # added three conversions of it to the row's time.
        speed = self.measure("d_largest_task", worker_argv("converter_speed", {"corpus": str(self.corpus)}))
        m.result.update(speed.result if speed.returncode == 0 else {})
        self.row("d", "(d) converter alone (validate_result + Delta, no Dagster, no catalog)", m,
                 m.result.get("stored_bytes"), f"{m.result.get('delta_files', '?')} Delta files, not compacted")

    def fresh_dir(self, name: str) -> Path:
        path = self.workdir / "out" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # --- reference and scale ---

    def zstd_reference(self) -> None:
        """zstd -19 of the raw JSON (a few MB/s): over ZSTD_SAMPLE_BYTES, estimated from a stratified sample.

        Ordinary files: every k-th file; huge files (one generator, one shape): the first
        part of one of them. Kept beside the corpus: it depends on nothing else.
        """
        import zstandard

        cache = self.workdir / "zstd19.json"
        params = json.loads((self.workdir / "corpus.json").read_text())["params"]
        if cache.exists() and json.loads(cache.read_text()).get("params") == params:
            self.extra["zstd19"] = json.loads(cache.read_text())["zstd19"]
            return
        self.say("compressing the JSON with zstd -19 ...")
        files = corpus_files(self.corpus)
        huge = [p for _, p in files if p.stat().st_size >= HUGE_FILE_BYTES]
        ordinary = [p for _, p in files if p.stat().st_size < HUGE_FILE_BYTES]
        compressor = zstandard.ZstdCompressor(level=19, threads=-1)
        started = time.perf_counter()
        estimated = raw_total = sampled = 0
        for group, cap in ((ordinary, ZSTD_SAMPLE_BYTES), (huge, ZSTD_SAMPLE_BYTES // 4)):
            if not group:
                continue
            total = sum(p.stat().st_size for p in group)
            if group is huge:
                data = group[0].read_bytes()[:cap]
            else:
                data = b"".join(p.read_bytes() for p in group[::max(1, math.ceil(total / cap))])
            estimated += len(compressor.compress(data)) * total / len(data)
            raw_total += total
            sampled += len(data)
        self.extra["zstd19"] = {
            "compressed_bytes": round(estimated), "json_bytes": raw_total, "sampled_bytes": sampled,
            "ratio": 1 - estimated / raw_total if raw_total else None, "seconds": time.perf_counter() - started,
            "sampled": sampled < raw_total,
        }
        cache.write_text(json.dumps({"params": params, "zstd19": self.extra["zstd19"]}))
        self.say(f"  zstd -19: {self.extra['zstd19']['ratio']:.1%} smaller "
                 f"({sampled / 1e6:.0f} of {raw_total / 1e6:.0f} MB compressed)")

    def scale(self) -> None:
        from benchmarks.scale import write_tree

        n = self.args.scale_tasks
        tree = self.workdir / "scale_tree"
        self.say(f"scale: writing {n} tiny tasks ...")
        written = write_tree(tree, n)
        home = self.fresh_home("scale")
        env = self.env_for(home)
        register = self.measure("scale_register", worker_argv("scale_register", {"n": n}), env)
        dry = self.measure("scale_dry_run", self.cli("migrate", "--source-dir", str(tree), "--dry-run", "--json"), env)
        fill = self.measure("scale_catalog", worker_argv("scale_catalog", {"tree": str(tree), "n": n}), env)
        status = self.measure("scale_status", self.cli("status", "--json"), env)
        try:
            listed = len(json.loads(status.stdout)["tasks"]) if status.returncode == 0 else None
        except ValueError:
            listed = None
        self.extra["scale"] = {
            "tasks": n, "tree_write_seconds": written,
            "register_seconds": register.result.get("register_seconds"),
            "register_added": register.result.get("added"),
            "reregister_seconds": register.result.get("reregister_seconds"),
            "dry_run_seconds": dry.seconds, "dry_run_ok": dry.returncode == 0,
            "dry_run_report": last_json(dry.stdout),
            "catalog_fill_seconds": fill.result.get("fill_seconds"),
            "status_seconds": status.seconds, "status_listed": listed, "status_peak_rss_mb": status.peak_rss_mb,
        }

    # --- judging and printing ---

    def judge(self) -> None:
        rows = {r["key"]: r for r in self.rows}
        a, c = rows.get("a"), rows.get("c")
        extra_c = self.extra.get("c", {})

        def target(name, value, goal, passed, how=""):
            self.targets.append({"target": name, "value": value, "goal": goal,
                                 "result": "n/a" if passed is None else "PASS" if passed else "MISS", "how": how})

        pairs = self.extra.get("pairs", [])
        if len(pairs) > 1:  # judged by the worst pair: met only when every pair meets it
            ratios = sorted(c_s / a_s for a_s, c_s in pairs)
            spread = (f"(c) takes {statistics.median(ratios):.2f}x (a)'s time (median; {ratios[0]:.2f}-"
                      f"{ratios[-1]:.2f}x over {len(pairs)} pairs, alternated)")
            target("(c) vs (a), same corpus", spread, "<= 1x the time (no slower)", ratios[-1] <= 1)
            target("(c) on stock dagster-postgres storage (the default) vs (a), same corpus", spread,
                   "<= 1.5x", ratios[-1] <= 1.5, "issue 20: an existing deployment's instance; every pair")
        elif a and c and c["ok"] and a["ok"]:
            x = a["seconds"] / c["seconds"]
            target("(c) vs (a), same corpus", f"{x:.2f}x as fast", ">= 1x (no slower)", x >= 1)
            x = c["seconds"] / a["seconds"]
            target("(c) on stock dagster-postgres storage (the default) vs (a), same corpus", f"{x:.2f}x the time",
                   "<= 1.5x", x <= 1.5, "issue 20: an existing deployment's instance; one pair (--pairs for more)")
        for key, what in (("s", "a team's own stock dagster.yaml"), ("t", "the opt-in tuned storage")):
            other = rows.get(key)
            if a and other and other["ok"] and a["ok"]:
                x = other["seconds"] / a["seconds"]
                target(f"({key}) (c) with {what} vs (a), same corpus", f"{x:.2f}x the time", "for comparison", None)
        b = rows.get("b_pg")
        if b and c and b["ok"] and c["ok"]:
            x = b["seconds"] / c["seconds"]
            target(f"(c) vs {b['contender']}", f"{x:.2f}x faster", ">= 3x", x >= 3)
        d = rows.get("d")
        if d and d["ok"] and "largest_task_mb_s_per_core" in d["detail"]:
            r = d["detail"]
            target(f"converter: parse + normalize + prove of the largest task ({r['largest_task_signals']} signals, "
                   f"{r['largest_task_bytes'] / 1e6:.1f} MB)",
                   f"{r['largest_task_mb_s_per_core']:.1f} MB/s per core (wall {r['largest_task_mb_s']:.1f} MB/s)",
                   ">= 50 MB/s per core", r["largest_task_mb_s_per_core"] >= 50,  # issue 19's
                   "best of 3, bytes / CPU seconds of one process running migration.convert.convert")
        if c and c["ok"]:
            busy = c["machine_busy"]
            target("CPU utilisation of (c) over the run", f"{c['cpu_utilisation']:.0%} (process tree CPU / (wall x "
                   f"{os.cpu_count()} cores)); machine {busy:.0%} busy" if busy is not None else
                   f"{c['cpu_utilisation']:.0%}", ">= 80%", c["cpu_utilisation"] >= 0.8,
                   "CPU of migrate and every process below it (its forkserver workers too), sampled from /proc; "
                   "the machine figure also counts "
                   "the Postgres server (and anything else running)")
        if extra_c.get("bookkeeping_ms_per_task_asset") is not None:
            v = extra_c["bookkeeping_ms_per_task_asset"]
            events = extra_c["inspect"].get("run_events", {})
            per_task = sum(events.values()) / self.n_tasks if self.n_tasks else 0
            # Judged on the whole command: `migrate` starts converting its first batches before
            # its runs, so the runs' own time no longer holds all of the steps it is compared with.
            upper = extra_c["bookkeeping_upper_ms_per_task_asset"]
            before, after = extra_c.get("before_first_run_seconds"), extra_c.get("after_last_run_seconds")
            span = f"; {before:.1f} s before the first run began, {after:.1f} s after the last ended" \
                if before is not None and after is not None else ""
            target("Dagster bookkeeping per task per asset", f"{upper:.2f} ms by the whole command "
                   f"(inside the runs {v:.2f} ms{span}); {per_task:.1f} events per task", "<= 2 ms", upper <= 2,
                   "(whole command wall - the same batch steps run without Dagster) / (tasks x 5 assets): an "
                   "upper bound, start-up included; inside the runs: the sum of migrate runs' start-to-end in "
                   "the run records instead of the command's wall (a lower bound; the first batches' "
                   "conversion starts before the runs); before / after: the command's wall outside its runs "
                   "(Dagster's import, the instance and the definitions; the report); events: "
                   "every event of the migrate runs / tasks (" + ", ".join(
                       f"{k} {n / self.n_tasks:.1f}" for k, n in sorted(events.items(), key=lambda kv: -kv[1])
                       if n >= self.n_tasks / 2) + " per task)")
        if "rerun_seconds" in extra_c:
            inside = extra_c.get("rerun_in_command_seconds")
            value = f"{extra_c['rerun_tasks_per_s']:.0f} tasks/s wall ({extra_c['rerun_seconds']:.2f}s incl. start-up"
            value += f"; {self.n_tasks / inside:.0f} tasks/s by the report's own seconds)" if inside else ")"
            target("re-run with nothing changed", value, ">= 1000 tasks/s", extra_c["rerun_tasks_per_s"] >= 1000, "judged on wall time")
        info = extra_c.get("inspect", {})
        if info.get("after"):
            ratio = info["after"]["compression_ratio"]
            zstd = self.extra.get("zstd19", {}).get("ratio")
            lossless = info["lossless_mismatches"] == 0 and info["lossless_missing"] == 0
            target("stored bytes after store_maintenance (everything: Delta data and logs, catalog rows, vs "
                   "the migrated JSON)",
                   f"{ratio:.1%} smaller ({info['before']['delta_files']} -> {info['after']['delta_files']} files); "
                   f"zstd -19: {zstd:.1%} smaller (of files sampled together: each valid file alone compresses less)", ">= 90% smaller, lossless, smaller than zstd -19",
                   ratio is not None and ratio >= 0.90 and lossless and zstd is not None and ratio > zstd,
                   f"export of {info['lossless_checked']} valid tasks vs sources, byte for byte: "
                   f"{info['lossless_mismatches']} differ, {info['lossless_missing']} missing"
                   + (f" (first: {info['first_mismatch']})" if info.get("first_mismatch") else ""))
        if extra_c.get("one_huge_task_peak_rss_mb") and c:
            one, whole = extra_c["one_huge_task_peak_rss_mb"], c["peak_rss_mb"]
            target("peak RSS: one 100k-signal task vs the whole corpus", f"{one:.0f} MB vs {whole:.0f} MB",
                   "no growth with corpus size (whole <= 1.25 x one)", whole <= 1.25 * one)
        if c and c["ok"] and self.args.baseline:
            self.judge_against_baseline(c, target)
        s = self.extra.get("scale")
        if s:
            target(f"register {s['tasks']} partitions", f"{s['register_seconds']:.1f}s" if s["register_seconds"]
                   else "failed", "< 30 s", s["register_seconds"] is not None and s["register_seconds"] < 30)
            target(f"`migrate --dry-run` over {s['tasks']} tasks", f"{s['dry_run_seconds']:.1f}s", "printed",
                   None)
            target(f"`status` over {s['tasks']} tasks", f"{s['status_seconds']:.1f}s ({s['status_listed']} listed)",
                   "< 5 s", s["status_listed"] == s["tasks"] and s["status_seconds"] < 5)

    def judge_against_baseline(self, c: dict, target) -> None:
        """(c) on this corpus against (c) on a smaller one (its bench.json): the scale targets."""
        base_c, base_mb = read_baseline(self.args.baseline)
        this_mb_s, base_mb_s = self.json_bytes / 1e6 / c["seconds"], base_mb / base_c["seconds"]
        ratio = this_mb_s / base_mb_s
        target(f"(c) throughput on {self.json_bytes / 1e6:,.0f} MB vs {base_mb:,.0f} MB",
               f"{this_mb_s:.1f} vs {base_mb_s:.1f} MB/s ({ratio:.2f}x)", "within 10%", ratio >= 0.9)
        target(f"(c) peak RSS on {self.json_bytes / 1e6:,.0f} MB vs {base_mb:,.0f} MB",
               f"{c['peak_rss_mb']:.0f} vs {base_c['peak_rss_mb']:.0f} MB", "bounded by the batch (<= 1.25x)",
               c["peak_rss_mb"] <= 1.25 * base_c["peak_rss_mb"])

    def report(self) -> None:
        base = next((r for r in self.rows if r["key"] == "a" and r["ok"]), None)
        lines = [
            "",
            f"corpus: {self.n_tasks} tasks ({self.args.tasks} ordinary, {self.args.huge} of 100k signals, "
            f"11 invalid), {self.json_bytes / 1e6:.1f} MB of JSON, seed {self.args.seed}; {os.cpu_count()} cores",
            "",
            "| contender | seconds | MB/s JSON | tasks/s | stored bytes | compression | peak RSS MB | CPU use | vs (a) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            if not r["ok"]:
                lines.append(f"| {r['contender']} | failed | | | | | {r['peak_rss_mb']:.0f} | | |")
                continue
            stored = r["stored_bytes"]
            ratio = f"{1 - stored / self.json_bytes:.1%} smaller" if stored else "n/a"
            vs = f"{base['seconds'] / r['seconds']:.2f}x as fast" if base else "n/a"
            cpu = f"{r['cpu_utilisation']:.0%}"
            lines.append(f"| {r['contender']} | {r['seconds']:.1f} | {self.json_bytes / 1e6 / r['seconds']:.1f} | "
                         f"{self.n_tasks / r['seconds']:.1f} | {stored:,} | {ratio} | {r['peak_rss_mb']:.0f} | {cpu} | {vs} |"
                         if stored is not None else
                         f"| {r['contender']} | {r['seconds']:.1f} | {self.json_bytes / 1e6 / r['seconds']:.1f} | "
                         f"{self.n_tasks / r['seconds']:.1f} | n/a | n/a | {r['peak_rss_mb']:.0f} | {cpu} | {vs} |")
        lines += ["", "Notes:"]
        lines += [f"- {r['contender']}: {r['note']}" for r in self.rows if r["note"]]
        lines += [
            *([f"- 1-minute load average during the contenders: {min(v[0] for v in self.loads.values()):.1f} to "
               f"{max(max(v) for v in self.loads.values()):.1f} on {os.cpu_count()} cores (per run in bench.json)."]
              if self.loads else []),
            "- seconds: wall time of the contender's process, interpreter start-up and imports included; "
            "peak RSS: the largest single process of its tree (wait4 ru_maxrss); the Postgres server is not counted. "
            "CPU use: the process tree's CPU time / (wall x cores).",
            "- stored bytes: files written plus the Postgres tables written (pg_total_relation_size); "
            "compression: against all the corpus's JSON. (c)'s byte-exact JSON backups are not counted.",
            "- (a) keeps only signals (as written: timestamps as text, no instant) and a summary row; it drops "
            "curves, params, metadata, per-symbol performance and unknown top-level keys, and validates nothing "
            "(invalid documents that parse are stored as if valid).",
        ]
        c = self.extra.get("c")
        if c:
            info = c["inspect"]
            lines.append(f"- (c) re-run unchanged: {c['rerun_seconds']:.2f}s wall, "
                         f"{c['rerun_report'].get('skipped', '?')} skipped; export of all tasks "
                         f"{c['export_seconds']:.1f}s; store_maintenance {info.get('maintenance_seconds', 0):.1f}s: "
                         f"{info.get('before', {}).get('stored_bytes', 0):,} -> "
                         f"{info.get('after', {}).get('stored_bytes', 0):,} bytes, "
                         f"{info.get('before', {}).get('delta_files')} -> {info.get('after', {}).get('delta_files')} "
                         f"Delta files; catalog tables {info.get('catalog_bytes', 0):,} bytes")
            if "instance_create_seconds" in self.extra:
                lines.append(f"- (c), (s), (t) migrate in an instance that exists, as a team's does: creating a fresh "
                             f"instance's storage tables took {self.extra['instance_create_seconds']:.2f}s "
                             "(once per deployment), before the clock starts")
            lines.append(f"- (c) runs: {info.get('migrate_runs')} runs, {info.get('run_seconds', 0):.1f}s inside "
                         f"runs; the same steps without Dagster {c['plain_steps_seconds'] or 0:.1f}s")
        z = self.extra.get("zstd19")
        if z:
            how = f"estimated from {z['sampled_bytes'] / 1e6:.0f} MB sampled" if z["sampled"] else "whole corpus"
            lines.append(f"- zstd -19 of the raw JSON: {z['ratio']:.1%} smaller ({how}, {z['seconds']:.1f}s)")
        s = self.extra.get("scale")
        if s:
            lines.append(f"- scale: {s['tasks']} tasks; re-registering all (nothing new) {s['reregister_seconds'] or 0:.1f}s; "
                         f"catalog fill {s['catalog_fill_seconds'] or 0:.1f}s; `status` peak RSS "
                         f"{s['status_peak_rss_mb']:.0f} MB")
        lines += ["", "| target | measured | goal | result |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']} | {t['goal']} | {t['result']} |" for t in self.targets]
        how = [f"- {t['target']}: {t['how']}" for t in self.targets if t["how"]]
        if how:
            lines += ["", "How:"] + how
        text = "\n".join(lines)
        print(text)
        (self.workdir / "bench.json").write_text(json.dumps({
            "command": "result-assets bench " + " ".join(sys.argv[2:]),
            "corpus": {"tasks": self.n_tasks, "json_bytes": self.json_bytes, "ordinary": self.args.tasks,
                       "huge": self.args.huge, "seed": self.args.seed},
            "cores": os.cpu_count(), "load_average_before_after": self.loads, "rows": self.rows, "extra": self.extra, "targets": self.targets,
            "table": text,
        }, indent=1, default=str, ensure_ascii=False))
        print(f"\nwrote {self.workdir / 'bench.json'}")

    def say(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)


def read_baseline(path: str) -> tuple[dict, float]:
    """(its (c) row, its corpus's MB) of a bench.json given as --baseline; a one-line error when
    it is not one (checked before the bench runs, and again when it is used)."""
    from result_assets.errors import UsageError

    try:
        baseline = json.loads(Path(path).read_text())
        return (next(r for r in baseline["rows"] if r["key"] == "c" and r["ok"]),
                baseline["corpus"]["json_bytes"] / 1e6)
    except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
        raise UsageError(f"--baseline {path}: not a bench.json with a (c) row ({exc})") from None
