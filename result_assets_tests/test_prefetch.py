"""convert.Prefetch: the next batch converted ahead, taken only for the very bytes its batch reads."""
import json
import shutil
from pathlib import Path

import pytest

from result_assets.migration import convert
from result_assets.migration.batch import read_source
from result_assets.migration.sources import scan_source_dir

SAMPLES = Path(__file__).parent / "samples" / "tasks"
LIMIT = 1 << 30


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "PARALLEL_MIN_BYTES", 0)  # the samples are small: use the workers anyway
    for name in ("bt_20250900_600020", "bt_20250901_14ceeb"):
        shutil.copytree(SAMPLES / name, tmp_path / name)
    yield tmp_path


@pytest.fixture
def ahead():
    prefetch = convert.Prefetch(LIMIT, workers=2)
    yield prefetch
    prefetch.discard()


def test_a_prefetched_conversion_is_taken_for_the_same_bytes(tree, ahead, monkeypatch):
    files = scan_source_dir(tree).tasks
    ahead.start(files)
    raws = [read_source(f, LIMIT) for f in files]

    def not_again(raw):
        raise AssertionError(f"{raw.source.task_id} converted a second time")

    monkeypatch.setattr(convert, "convert", not_again)
    validated = convert.convert_batch(raws, workers=2, ahead=ahead)
    assert [v.task_id for v in validated] == [f.task_id for f in files]
    assert all(v.proven and v.sha256 == r.sha256 for v, r in zip(validated, raws))
    assert [v.source for v in validated] == files
    assert ahead.pending == {}  # nothing left behind


def test_a_file_changed_after_its_prefetch_is_converted_from_what_its_batch_read(tree, ahead):
    files = scan_source_dir(tree).tasks
    ahead.start(files)
    for future in ahead.pending.values():  # let the stale conversions finish first
        future.result()
    path = Path(files[0].path)
    document = json.loads(path.read_text())
    def signals(doc):
        return sum(len(s.get("signals", [])) for s in doc["symbols"] if isinstance(s, dict))

    before = signals(document)
    for symbol in document["symbols"]:
        symbol["signals"] = symbol["signals"][:1]
    path.write_text(json.dumps(document))
    assert signals(document) < before
    files = scan_source_dir(tree).tasks
    raws = [read_source(f, LIMIT) for f in files]
    changed, _ = convert.convert_batch(raws, workers=2, ahead=ahead)
    assert changed.sha256 == raws[0].sha256 and changed.proven
    assert changed.result.n_signals == changed.result.signals.num_rows == signals(document)


def test_a_small_batch_is_not_converted_ahead(tmp_path, ahead):
    shutil.copytree(SAMPLES / "bt_20250900_600020", tmp_path / "bt_20250900_600020")
    ahead.start(scan_source_dir(tmp_path).tasks)
    assert ahead.pending == {}  # in-process with its batch: no worker round trip


def test_conversion_workers_run_below_their_clients_priority():
    """The client's own work (events, writes, read-backs) is a migration's critical path:
    the workers take the CPU it leaves."""
    import os

    mine = os.nice(0)
    assert convert._get_pool(2).submit(os.nice, 0).result() == min(mine + 10, 19)


def _converted_without_pandas(source) -> tuple[bool, bool]:
    """In a worker: (proven, whether pandas got imported)."""
    import sys

    v = convert._read_and_convert(source, LIMIT)
    return v.proven, "pandas" in sys.modules


def test_the_workers_convert_without_importing_pandas(tree):
    """pyarrow imports pandas at a process's first pa.array of a list when it can (0.43 s of
    a worker's CPU); no conversion uses it, so a worker never loads it."""
    files = scan_source_dir(tree).tasks
    results = [convert._get_pool(2).submit(_converted_without_pandas, f).result() for f in files]
    assert results == [(True, False)] * len(files)
