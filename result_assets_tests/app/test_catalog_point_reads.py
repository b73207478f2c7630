"""A point read's catalog query (Catalog.tasks of one task) runs as a statement prepared once
per session: it must give the very row the query of several tasks gives, in every variant
(hot rows, a served file, a held version), and survive a session that lost it."""
from __future__ import annotations

import pytest

from result_assets import ResultManager
from result_assets.migration.maintenance import maintain
from result_assets.settings import Settings
from result_assets.store.catalog import _ONE_TASK
from result_assets_tests.app.helpers import V2_TASK, sample_document, small_document, text


@pytest.fixture(scope="module")
def served(project_home):
    with pytest.MonkeyPatch.context() as env:  # the suite runs with the serving cache off (conftest.py)
        env.setenv("RESULT_SERVING_CACHE_MB", "64")
        m = ResultManager("postgres-only", record_in_dagster=False, settings=Settings.from_env())
        m.save_result("point_flushed", sample_document(V2_TASK))
        m.get_result("point_flushed")
        maintain(m.stores)  # its rows in Delta now
        m.save_result("point_hot", small_document(strategy="hot"))  # its rows in the hot tier
        m.get_result("point_hot")
        m.stores.serving_cache.settle()  # both files served now
        yield m
        m.close()


def plain(rows: dict) -> dict:
    """Rows as {column: repr of its value}: a RealDictRow compares its columns' order too, which
    no caller reads, and a NaN metric is never equal to itself (bytea comes as a memoryview)."""
    return {task_id: {column: repr(bytes(value) if isinstance(value, memoryview) else value)
                      for column, value in row.items()} for task_id, row in rows.items()}


def prepared_names(m: ResultManager) -> set[str]:
    conn = m.stores.catalog.connect()
    conn.autocommit = True
    try:
        return prepared_names_in(conn)
    finally:
        conn.autocommit = False


@pytest.mark.parametrize("served_file", [False, True])
@pytest.mark.parametrize("held", [False, True])
def test_one_tasks_row_is_the_row_a_read_of_several_gives(served, served_file, held):
    catalog = served.stores.catalog
    versions = {t: (r["version"], r["source_sha256"]) for t, r in catalog.tasks(["point_flushed", "point_hot"]).items()}
    several = catalog.tasks(["point_flushed", "point_hot", "point_absent"], served=served_file,
                            held=versions if held else None)
    assert set(several) == {"point_flushed", "point_hot"}
    if not served_file and not held:
        assert several["point_hot"]["hot_signals"] is not None and several["point_flushed"]["hot_signals"] is None
    for task_id in ("point_flushed", "point_hot"):
        one = catalog.tasks([task_id], served=served_file, held={task_id: versions[task_id]} if held else None)
        assert plain(one) == plain({task_id: several[task_id]})
    assert _ONE_TASK[served_file, held].name in prepared_names(served)
    assert catalog.tasks(["point_absent"], served=served_file) == {}


def test_a_served_file_and_a_held_version_come_as_the_several_query_says(served):
    catalog = served.stores.catalog
    row = catalog.tasks(["point_hot"], served=True)["point_hot"]
    assert row["served_body"] is not None and row["hot_signals"] is None and row["hot_left_out"]
    held = catalog.tasks(["point_hot"], served=True, held={"point_hot": (row["version"], row["source_sha256"])})
    assert held["point_hot"]["held_version"] and held["point_hot"]["served_body"] is None
    stale = catalog.tasks(["point_hot"], served=True, held={"point_hot": (row["version"] - 1, row["source_sha256"])})
    assert not stale["point_hot"]["held_version"] and stale["point_hot"]["served_body"] is not None


def test_a_session_that_lost_its_prepared_statements_prepares_them_again(served):
    catalog = served.stores.catalog
    expected, document = catalog.tasks(["point_flushed"], served=True), text(served.get_result("point_flushed"))
    conn = catalog.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DEALLOCATE ALL")  # what a pooler's reset of the session does
    conn.autocommit = False
    assert plain(catalog.tasks(["point_flushed"], served=True)) == plain(expected)
    assert text(served.get_result("point_flushed")) == document
    assert _ONE_TASK[True, False].name in prepared_names(served)


def test_inside_a_transaction_a_point_read_plans_as_before(served):
    """A caller inside a transaction is read by the plain query: nothing is prepared there,
    where an error would abort the caller's transaction."""
    catalog = served.stores.catalog
    expected = catalog.tasks(["point_flushed"])
    conn = catalog.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    conn.autocommit = False
    catalog._prepared.clear()
    with conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # the transaction is open now
        assert plain(catalog.tasks(["point_flushed"])) == plain(expected)
        assert _ONE_TASK[False, False].name not in prepared_names_in(conn)


def prepared_names_in(conn) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cur.fetchall()}
