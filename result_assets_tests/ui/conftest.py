"""A real Dagster webserver and daemon on 127.0.0.1, over a fresh project home.

The fixture process starts the embedded Postgres first (so the subprocesses find it
running), then `dagster-webserver` and `dagster-daemon` as subprocesses of their own
process groups, and stops them (terminate, then kill) before the home's Postgres stops.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
LOCATION = "result_assets"
REPOSITORY = "__repository__"
TASK_ASSETS = ("result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry")
START_TIMEOUT = 180  # seconds: the webserver loads the code location in a subprocess


@dataclass
class DagsterUI:
    url: str
    home: Path
    source: Path
    logs: dict[str, Path]

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        """POST a GraphQL document; returns `data`, raising on GraphQL errors."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a malformed document: GraphQL says why in the body
            raise AssertionError(f"GraphQL HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from None
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def wait_for(predicate, timeout: float, interval: float = 1.0, what: str = "condition"):
    """Poll until predicate() returns something truthy; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with log.open("wb") as out:
        # A process group of its own: the webserver and daemon start code servers we must stop too.
        return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_terminated_with_parent)


def _terminated_with_parent() -> None:
    """In the child, before exec: killed when the test process dies. A run killed mid-test
    (a timeout, a second Ctrl-C) skips the fixture's stop, and a daemon of a session of its
    own would otherwise poll the test home's Postgres for ever (found: one left an hour).
    SIGKILL, not SIGTERM: the webserver takes a first SIGTERM as a graceful shutdown that
    did not end (measured: still up a minute later). Their code servers stop by themselves
    when no heartbeat comes (`dagster api grpc --heartbeat`)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """Terminate the process and its group (code servers, run workers), then kill what is left.

    The whole group must be gone before the embedded Postgres is stopped: it stays up while
    any process that opened it is alive.
    """
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if not _group_alive(process.pid):
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while _group_alive(process.pid) and time.monotonic() < deadline:
            if process.poll() is None:
                try:
                    process.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.2)
    process.poll()


def _server_up(url: str, processes: list[subprocess.Popen], logs: dict[str, Path]) -> bool:
    for process, (name, log) in zip(processes, logs.items()):
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


LOCATION_STATUS = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _location_loaded(ui: DagsterUI):
    entries = ui.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    entry = next(e for e in entries if e["name"] == LOCATION)
    if entry["loadStatus"] != "LOADED":
        return None
    return entry


@pytest.fixture(scope="module")
def dagster_ui(project_home, sample_source, tmp_path_factory):
    """Webserver + daemon over a fresh home whose RESULT_SOURCE_DIR is a copy of the samples."""
    from result_assets.assets.instance import ensure_dagster_home, get_instance
    from result_assets.store.postgres import catalog_url, dagster_url
    from result_assets.settings import Settings

    os.environ["RESULT_SOURCE_DIR"] = str(sample_source)
    settings = Settings.from_env()
    ensure_dagster_home(settings)  # writes dagster.yaml, sets DAGSTER_HOME
    catalog_url(settings)  # starts the embedded server before the subprocesses look for it
    dagster_url(settings)
    # Create the instance's tables here: the webserver and daemon starting together on an
    # empty database race to create them (and log "Retrying failed database creation").
    get_instance(settings).dispose()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bin_dir = Path(sys.executable).parent
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_dir = tmp_path_factory.mktemp("dagster_logs")
    logs = {"webserver": log_dir / "webserver.log", "daemon": log_dir / "daemon.log"}
    processes = [
        _start([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
               logs["webserver"], env),
        _start([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], logs["daemon"], env),
    ]
    ui = DagsterUI(url=url, home=project_home, source=sample_source, logs=logs)
    try:
        wait_for(lambda: _server_up(url, processes, logs), START_TIMEOUT, what="the webserver's /server_info")
        entry = wait_for(lambda: _location_loaded(ui), START_TIMEOUT, what="the code location to load")
        assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
        yield ui
    finally:
        for process in processes:
            _stop(process)
        os.environ.pop("RESULT_SOURCE_DIR", None)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


# --- GraphQL helpers shared by the API and browser tests ---

START_SENSOR = """
mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
  __typename ... on Sensor { sensorState { id status } } ... on PythonError { message } } }
"""
STOP_SENSOR = """
mutation($id: String!) { stopSensor(id: $id) {
  __typename ... on PythonError { message } } }
"""
PARTITION_KEYS = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeysByDimension { partitionKeys } } } }
"""


def partition_keys(ui: DagsterUI, asset: str = "signal_table") -> list[str]:
    node = ui.graphql(PARTITION_KEYS, {"key": {"path": [asset]}})["assetNodeOrError"]
    return node["partitionKeysByDimension"][0]["partitionKeys"]


def register_partitions_with_sensor(ui: DagsterUI, expected: int, timeout: float = 120) -> list[str]:
    """Turn new_task_sensor on until it has registered `expected` partitions, then off again."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "sensorName": "new_task_sensor"}
    started = ui.graphql(START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor", started
    try:
        return wait_for(lambda: (k := partition_keys(ui)) and len(k) >= expected and k, timeout,
                        interval=2, what=f"the sensor to register {expected} partitions")
    finally:
        stopped = ui.graphql(STOP_SENSOR, {"id": started["sensorState"]["id"]})["stopSensor"]
        assert stopped["__typename"] == "StopSensorMutationResult", stopped
