"""`python -m benchmarks.faithful`: does the store give back exactly what it was given?

    python -m benchmarks.faithful [--corpus DIR ...] [--tasks N] [--json]

For each corpus (default: the repo's samples; `--tasks N` adds a generated corpus of N
tasks), in a fresh home: migrate it, then count, over the valid tasks (the corpus's own list
where it has one, expect.json or the generator's: a valid file the store quarantined counts
against it; else the tasks the store migrated), every read from the stored rows (the hot tier
or the Delta tables: a reader with both caches off, so no cached copy answers for them),

- export byte-identical: `result-assets export` writes bytes whose SHA-256 is the source's;
- get_result == json.loads(file): a postgres-only ResultManager reads the document the
  file holds, key order, int vs float, -0.0 and NaN included;
- get_results == json.loads(file): the same, all tasks read in one call (the read cache
  emptied first: readers of many tasks spell their timestamps together);
- save, then get_result == what was saved (postgres-only, documents the save did not
  auto-correct), in the hot tier and again after `maintain` moved them to Delta, and
  get_results of them all then;
- one of four json.dumps calls: json.loads(file) written back with indent None or 2 and
  ensure_ascii True or False gives the file's bytes;
- regenerable from the rows: the document rebuilt from the task's rows and skeleton, with
  the Spelling legacy/exact.py learns (style, timestamp spellings, row and number
  patches), writes the file's bytes; with the Spelling's size as JSON text.

A store that keeps the files whole scores every row fully. Prints a table; --json prints
the counts as one JSON object.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from benchmarks.measure import FOREIGN_ENV, fresh_home, stop_home

SAMPLES = Path(__file__).resolve().parents[1] / "result_assets_tests" / "samples" / "tasks"
STYLES = [(indent, ascii_only) for indent in (None, 2) for ascii_only in (True, False)]
# (key, label, target): issue 19's targets; the styles row describes the corpus itself.
ROWS = [
    ("export", "export byte-identical (SHA-256 of the file)", "all"),
    ("get", "get_result == json.loads(file), migrated tasks", "all"),
    ("get_many", "get_results == json.loads(file), migrated tasks read together", "all"),
    ("saved_hot", "save then get_result == saved (hot tier)", "all"),
    ("saved_flushed", "save then get_result == saved (after maintain)", "all"),
    ("saved_many", "save then get_results == saved (after maintain, read together)", "all"),
    ("styles", "file is one of four json.dumps calls", "(the corpus)"),
    ("regenerable", "regenerable from the rows + a Spelling (legacy/exact.py)", "all"),
]


def same(a: object, b: object) -> bool:
    """Equal as JSON documents are: key order, int vs float, -0.0 and NaN included."""
    return json.dumps(a, allow_nan=True) == json.dumps(b, allow_nan=True)


def one_of_four_styles(raw: bytes, document: object) -> bool:
    return any(json.dumps(document, indent=indent, ensure_ascii=ascii_only).encode() == raw
               for indent, ascii_only in STYLES)


def regenerate(task_id: str, raw: bytes) -> tuple[bool, int]:
    """(the bytes come back from the rows and a learned Spelling, that Spelling's JSON size)."""
    from result_assets.legacy import dumps_document, exact, normalize, parse_document

    result = normalize(task_id, parse_document(raw))
    stored = (dumps_document(result.skeleton), result.signals, result.curves)
    learned = exact.learn(raw, parse_document(raw), *stored)
    if learned is None:
        return False, 0
    text = learned[0].to_json()
    return exact.file_bytes(*stored, text, None) == raw, len(text.encode())


def expected_valid(corpus: Path) -> list[str] | None:
    """The corpus's own list of its valid tasks (expect.json beside or above its task folders,
    as the samples and the generator write it), None when it has none."""
    for path in (corpus / "expect.json", corpus.parent / "expect.json"):
        if path.is_file():
            expect = json.loads(path.read_text())
            return sorted(t for t, e in expect.items() if e.get("valid") and (corpus / t / "result.json").is_file())
    return None


def measure(corpus: Path, valid_ids: list[str] | None = None) -> dict:
    """The counts for one corpus, measured in a fresh home (its server stopped afterwards);
    over valid_ids, else its own list (expected_valid), else the tasks the store migrated."""
    from dataclasses import replace

    from result_assets.app.manager import ResultManager
    from result_assets.cli import main
    from result_assets.migration.maintenance import maintain
    from result_assets.settings import Settings
    from result_assets.store.stores import Stores

    home = fresh_home(Path(tempfile.mkdtemp(prefix="faithful_")))
    saved_env = {k: os.environ.pop(k) for k in list(os.environ) if k in FOREIGN_ENV}
    os.environ["RESULT_ASSETS_HOME"] = str(home)
    try:
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            main(["migrate", "--source-dir", str(corpus), "--json"])
            out = home / "export"
            main(["export", "--out", str(out)])
        stores = Stores.from_env()
        migrated = stores.catalog.migrated_task_ids()
        valid = valid_ids or expected_valid(corpus) or migrated
        sources = {t: (corpus / t / "result.json").read_bytes() for t in valid}
        documents = {t: json.loads(raw) for t, raw in sources.items()}
        counts = {"corpus": str(corpus), "valid": len(valid), "migrated": len(set(migrated) & set(valid))}
        counts["export"] = sum(
            1 for t, raw in sources.items()
            if (out / f"{quote(t, safe='')}.json").is_file()
            and hashlib.sha256((out / f"{quote(t, safe='')}.json").read_bytes()).digest() == hashlib.sha256(raw).digest())
        settings = replace(Settings.from_env(), storage_mode="postgres-only")
        # Saves as the application makes them (their files go to the serving cache); reads from
        # the rows only: a cached copy of what was saved would prove nothing about the store.
        writer = ResultManager("postgres-only", record_in_dagster=False, settings=settings)
        reader = ResultManager("postgres-only", record_in_dagster=False,
                               settings=replace(settings, read_cache_mb=0, serving_cache_mb=0))
        counts["get"] = sum(1 for t in valid if same(_read(reader, t), documents[t]))
        together = reader.get_results(valid)
        counts["get_many"] = sum(1 for t in valid if t in together and same(together[t], documents[t]))
        counts["styles"] = sum(1 for t in valid if one_of_four_styles(sources[t], documents[t]))
        spellings = {t: regenerate(t, sources[t]) for t in valid}
        counts["regenerable"] = sum(1 for ok, _ in spellings.values() if ok)
        counts["spelling_bytes"] = sum(size for _, size in spellings.values())
        counts["json_bytes"] = sum(len(raw) for raw in sources.values())

        saved = {}
        for i, t in enumerate(valid):
            outcome = writer.save_result(f"faithful_save_{i:05d}", documents[t])
            if not outcome.corrections:
                saved[outcome.task_id] = documents[t]
        counts["saves"] = len(saved)
        counts["saved_hot"] = sum(1 for t, doc in saved.items() if same(_read(reader, t), doc))
        report = maintain(stores, retention_hours=0)
        counts["saves_flushed"] = len(set(report.flushed_task_ids) & set(saved))  # read from Delta below
        counts["saved_flushed"] = sum(1 for t, doc in saved.items() if same(_read(reader, t), doc))
        together = reader.get_results(list(saved))
        counts["saved_many"] = sum(1 for t, doc in saved.items() if t in together and same(together[t], doc))
        return counts
    finally:
        os.environ.pop("RESULT_ASSETS_HOME", None)
        os.environ.update(saved_env)
        stop_home(home)
        shutil.rmtree(home, ignore_errors=True)


def _read(reader, task_id: str):
    """The document, or None when the store gives none (a valid file it quarantined, say)."""
    from result_assets.app.errors import ResultNotFound

    try:
        return reader.get_result(task_id)
    except ResultNotFound:
        return None


def table(results: list[dict]) -> str:
    lines = ["| | " + " | ".join(Path(r["corpus"]).name for r in results) + " | target |",
             "|---|" + "---|" * len(results) + "---|"]
    for key, label, target in ROWS:
        cells = [f"{r[key]} of {r['saves'] if key.startswith('saved') else r['valid']}" for r in results]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faithful", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", action="append", type=Path, metavar="DIR",
                        help="a folder of <task_id>/result.json (repeatable; default the repo's samples)")
    parser.add_argument("--tasks", type=int, default=0, help="also a generated corpus of this many tasks")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    args = parser.parse_args(argv)
    corpora = list(args.corpus or [SAMPLES])
    lists: dict[Path, list[str]] = {}  # the generator's own list of the valid tasks it wrote
    work = Path(tempfile.mkdtemp(prefix="faithful_corpus_"))
    if args.tasks:
        from benchmarks.corpus import generate_corpus

        generated = work / f"generated_{args.tasks}"
        expect = generate_corpus(generated, args.tasks, seed=7)
        corpora.append(generated)
        lists[generated] = sorted(t for t, e in expect.items() if e["valid"])
    missing = [str(c) for c in corpora if not c.is_dir()]
    if missing:
        print(f"benchmarks.faithful: error: no such folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = []
    try:
        for corpus in corpora:
            print(f"measuring {corpus} ...", file=sys.stderr, flush=True)
            results.append(measure(corpus, lists.get(corpus)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"corpora": results}))
    else:
        print(table(results))
        for r in results:
            print(f"{Path(r['corpus']).name}: {r['migrated']} of its {r['valid']} valid files migrated; "
                  f"{r['saves_flushed']} of {r['saves']} saves moved to Delta by maintain before they were read "
                  "again; every read from the rows, no cache")
            print(f"{Path(r['corpus']).name}: Spellings {r['spelling_bytes']:,} bytes of JSON text for "
                  f"{r['json_bytes']:,} JSON bytes ({r['spelling_bytes'] / max(1, r['json_bytes']):.3%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
