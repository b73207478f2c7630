from hypothesis import given, settings
from hypothesis import strategies as st

from result_assets.legacy import partition_key_for, task_id_for

FORBIDDEN = ["...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0", ",", "[", "]", "*"]


def assert_key_is_safe(key: str):
    assert key
    for bad in FORBIDDEN:
        assert bad not in key
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in key)


@given(st.text())
@settings(max_examples=500)
def test_round_trip_and_safe(task_id):
    key = partition_key_for(task_id)
    assert task_id_for(key) == task_id
    assert_key_is_safe(key)


@given(st.text(alphabet=st.sampled_from(".~%,[]*\x00\n a가")))
@settings(max_examples=500)
def test_round_trip_tricky_alphabet(task_id):
    key = partition_key_for(task_id)
    assert task_id_for(key) == task_id
    assert_key_is_safe(key)


def test_examples():
    assert partition_key_for("bt_20250901_3caf88") == "bt_20250901_3caf88"
    assert partition_key_for("백테스트_005") == "백테스트_005"
    assert partition_key_for("grid run 7") == "grid run 7"
    assert partition_key_for("grid...42") == "~grid%2E%2E%2E42"
    assert partition_key_for("~x") == "~%7Ex"
    assert task_id_for("~grid%2E%2E%2E42") == "grid...42"
    assert partition_key_for("한\t1") == "~한%091"
    # lone surrogates (undecodable file names) survive too
    assert task_id_for(partition_key_for("a\udcff")) == "a\udcff"
    assert len({partition_key_for(t) for t in ["a.b", "a%2Eb", "~a.b", "a.b~"]}) == 4
