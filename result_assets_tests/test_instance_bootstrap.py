"""The first use of a fresh Dagster instance by several processes at once (a `migrate` and a
`maintain` started together on a new home, as the soak does): each gets the instance."""
from __future__ import annotations

import time
from multiprocessing import get_context


def _open_instance(start_at: float) -> str:
    time.sleep(max(0.0, start_at - time.time()))  # all at once
    from result_assets.assets.instance import get_instance

    instance = get_instance()
    instance.get_runs(limit=1)  # its storage is there and answers
    instance.dispose()
    return "ok"


def test_processes_opening_a_fresh_instance_together_all_get_it(project_home):
    from result_assets.settings import Settings
    from result_assets.store.postgres import dagster_url

    dagster_url(Settings.from_env())  # the server and the instance's database, as any first command makes them
    start_at = time.time() + 4  # past the workers' start-up and imports
    with get_context("spawn").Pool(4) as pool:
        outcomes = [pool.apply_async(_open_instance, (start_at,)) for _ in range(4)]
        assert [o.get(timeout=300) for o in outcomes] == ["ok"] * 4
