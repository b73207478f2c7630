"""A generated corpus: every valid task round-trips, every bad one is rejected."""

import json

import pytest

from benchmarks.corpus import BAD_KINDS, generate_corpus
from result_assets.legacy import InvalidResult, compare_documents, parse_document, reconstruct, validate_result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    dest = tmp_path_factory.mktemp("corpus")
    expect = generate_corpus(dest, 40, seed=7, huge_tasks=1, huge_signals=5000, bad_per_kind=2)
    return dest, expect


def test_corpus_has_every_kind(corpus):
    _, expect = corpus
    cases = {e["case"] for e in expect.values()}
    assert set(BAD_KINDS) <= cases
    assert "v1" in cases and "huge" in cases


def test_corpus_is_deterministic(tmp_path, corpus):
    dest, expect = corpus
    again = generate_corpus(tmp_path, 40, seed=7, huge_tasks=1, huge_signals=5000, bad_per_kind=2)
    assert again == expect
    for task_id in list(expect)[:10]:
        assert (tmp_path / task_id / "result.json").read_bytes() == (dest / task_id / "result.json").read_bytes()


def test_every_corpus_task(corpus):
    dest, expect = corpus
    for task_id, e in expect.items():
        raw = (dest / task_id / "result.json").read_bytes()
        if not e["valid"]:
            with pytest.raises(InvalidResult):
                validate_result(task_id, raw)
            continue
        result = validate_result(task_id, raw)
        assert result.n_signals == e["signals"], task_id
        restored = reconstruct(result.skeleton, result.signals, result.curves)
        assert compare_documents(parse_document(raw), restored) == [], task_id


def test_cli_prints_summary(tmp_path, capsys):
    from benchmarks.corpus import main

    assert main([str(tmp_path / "c"), "--tasks", "3", "--expect-out", str(tmp_path / "e.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())
