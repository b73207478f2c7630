import pytest
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


# --- directory name (bytes) <-> task id ---

from result_assets.legacy import dir_name_for_task_id, task_id_for_dir_name  # noqa: E402

# Any bytes a directory name can hold (no NUL, no "/"), biased to the tricky ones.
dir_names = (st.binary(min_size=1, max_size=16) | st.text(min_size=1, max_size=8).map(str.encode) |
             st.lists(st.sampled_from([b"%bytes:", b"%", b"%25", b"%B9", b"\xb9", b"~", b".", "가".encode(), b"a"]),
                      min_size=1).map(b"".join)).filter(lambda name: b"\0" not in name and b"/" not in name)


@given(dir_names)
@settings(max_examples=500)
def test_dir_name_round_trip(name):
    task_id = task_id_for_dir_name(name)
    assert dir_name_for_task_id(task_id) == name
    task_id.encode("utf-8")  # valid text: Postgres, Delta and Dagster can hold it
    assert "\x00" not in task_id and "/" not in task_id
    assert task_id_for(partition_key_for(task_id)) == task_id
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.startswith("%bytes:"):
        assert task_id == text  # a UTF-8 name is its own id
    else:
        assert task_id.startswith("%bytes:")


@given(dir_names, dir_names)
@settings(max_examples=500)
def test_dir_names_never_collide(a, b):
    assert (task_id_for_dir_name(a) == task_id_for_dir_name(b)) == (a == b)


def test_dir_name_examples():
    cp949 = b"\xb9\xe9\xc5\xd7\xbd\xba\xc6\xae_005"
    cp949_id = "%bytes:%B9%E9%C5%D7%BD%BA%C6%AE_005"
    assert task_id_for_dir_name(cp949) == cp949_id
    assert task_id_for_dir_name(cp949.decode("utf-8", "surrogateescape")) == cp949_id  # os.scandir's str
    assert partition_key_for(cp949_id) == cp949_id  # a valid Dagster partition key as it stands
    # a real directory named like that id gets another id; other "%" names stay themselves
    assert task_id_for_dir_name(cp949_id.encode()) == "%bytes:%25bytes:%25B9%25E9%25C5%25D7%25BD%25BA%25C6%25AE_005"
    assert task_id_for_dir_name(b"%00") == "%00" and task_id_for_dir_name(b"50%_done") == "50%_done"
    assert task_id_for_dir_name("백테스트_005") == "백테스트_005"
    assert task_id_for_dir_name(b"grid run 7") == "grid run 7"
    for not_an_id in ["%bytes:abc", "%bytes:%b9", "%bytes:%zz", "%bytes:", "%bytes:%2F", "%bytes:%00"]:
        with pytest.raises(ValueError):
            dir_name_for_task_id(not_an_id)
