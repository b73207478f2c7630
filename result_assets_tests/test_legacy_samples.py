"""The shipped legacy samples: valid ones round-trip, bad ones are rejected."""

import json
import os
from pathlib import Path

import pyarrow as pa
import pytest

from result_assets.legacy import InvalidResult, compare_documents, parse_document, reconstruct, validate_result

SAMPLES = Path(os.environ.get("RESULT_ASSETS_SAMPLES", Path(__file__).parent / "samples"))
EXPECT = json.loads((SAMPLES / "expect.json").read_text())
VALID = sorted(t for t, e in EXPECT.items() if e["valid"])
BAD = sorted(t for t, e in EXPECT.items() if not e["valid"])

# What each bad sample's reason must mention.
REASON_WORDS = {
    "truncated": "not valid JSON",
    "empty_file": "empty",
    "invalid_utf8": "not UTF-8",
    "top_level_array": "array",
    "missing_strategy": "strategy",
    "symbols_not_list": "symbols",
    "signal_without_timestamp": "timestamp",
    "price_not_numeric": "price",
}


def read(task_id: str) -> bytes:
    return (SAMPLES / "tasks" / task_id / "result.json").read_bytes()


@pytest.mark.parametrize("task_id", VALID)
def test_valid_sample_round_trips(task_id):
    raw = read(task_id)
    result = validate_result(task_id, raw)
    assert result.n_signals == EXPECT[task_id]["signals"]
    assert [s.symbol for s in result.symbols] == EXPECT[task_id]["symbols"]
    restored = reconstruct(result.skeleton, result.signals, result.curves)
    assert compare_documents(parse_document(raw), restored) == []


@pytest.mark.parametrize("task_id", VALID)
def test_rows_in_any_order_round_trip(task_id):
    raw = read(task_id)
    result = validate_result(task_id, raw)
    order = pa.array(list(reversed(range(result.signals.num_rows))), pa.int64())
    shuffled = result.signals.take(order)
    restored = reconstruct(result.skeleton, shuffled, result.curves)
    assert compare_documents(parse_document(raw), restored) == []


@pytest.mark.parametrize("task_id", BAD)
def test_bad_sample_is_rejected_with_reason(task_id):
    with pytest.raises(InvalidResult) as caught:
        validate_result(task_id, read(task_id))
    reason = caught.value.reason
    assert "\n" not in reason
    assert REASON_WORDS[EXPECT[task_id]["case"]] in reason
