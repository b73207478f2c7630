"""The code location's shape (assets, checks, jobs, schedules, sensor, resources, partitions), no database.

Loading the definitions must not start or reach any PostgreSQL: `dagster dev`, the code
server and these tests load them before anything has a database.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dagster import DefaultSensorStatus, Definitions, DynamicPartitionsDefinition, SkipReason, build_sensor_context

from result_assets.assets import sensors
from result_assets.assets.io_managers import StoreIOManager
from result_assets.assets.resources import MigrationSettings, StoresResource
from result_assets.migration.convert import Prefetch
from result_assets.definitions import defs as load_defs

defs = load_defs()  # what the code location loads (built then, not at import)

TASK_ASSETS = {"legacy_result", "result_backup", "validated_result", "signal_table", "curve_table", "catalog_entry"}
UNPARTITIONED = {"migration_report", "store_maintenance"}
CHECKS = {"result_backup/backup_checksum", "signal_table/row_counts", "curve_table/row_counts",
          "catalog_entry/lossless_round_trip", "signal_table/compression_goal", "validated_result/quarantine"}
# prefetch: the conversions the CLI's launcher starts ahead; nothing for any other run.
# store_io_manager: downstream assets load signal_table, curve_table and catalog_entry through it.
RESOURCES = {"stores": StoresResource, "migration": MigrationSettings, "prefetch": Prefetch,
             "store_io_manager": StoreIOManager}
# Checks that enforce: a failed partition fails its step, so nothing downstream runs over it.
BLOCKING = {"result_backup/backup_checksum", "catalog_entry/lossless_round_trip"}
# Variables that would point a subprocess at an existing home or database.
LOCATION_VARS = ("RESULT_ASSETS_HOME", "DATABASE_URL", "DAGSTER_HOME", "RESULT_STORE_ROOT",
                 "RESULT_BACKUP_DIR", "RESULT_SOURCE_DIR", "RESULT_STORAGE_MODE")


def specs():
    return {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}


def test_definitions_load():
    Definitions.validate_loadable(defs)  # every resource an asset, check or job needs is provided


def test_asset_keys_and_their_partitions():
    by_key = specs()
    assert set(by_key) == TASK_ASSETS | UNPARTITIONED
    for key in TASK_ASSETS:
        partitions = by_key[key].partitions_def
        assert isinstance(partitions, DynamicPartitionsDefinition) and partitions.name == "tasks", key
    for key in UNPARTITIONED:
        assert by_key[key].partitions_def is None, key


def test_lineage():
    deps = {key: {d.asset_key.to_user_string() for d in spec.deps} for key, spec in specs().items()}
    assert deps == {
        "legacy_result": set(),
        "result_backup": {"legacy_result"},
        "validated_result": {"result_backup"},
        "signal_table": {"validated_result"},
        "curve_table": {"validated_result"},
        # the catalog row is written last: it is what makes a task visible to readers
        "catalog_entry": {"validated_result", "signal_table", "curve_table"},
        "migration_report": {"signal_table", "curve_table", "catalog_entry"},
        "store_maintenance": {"signal_table", "curve_table"},
    }


def test_check_keys():
    found = [spec.key.asset_key.to_user_string() + "/" + spec.key.name
             for assets_def in defs.assets if hasattr(assets_def, "check_specs")
             for spec in assets_def.check_specs]
    found += [spec.key.asset_key.to_user_string() + "/" + spec.key.name
              for checks_def in defs.asset_checks or [] for spec in checks_def.check_specs]
    assert sorted(found) == sorted(CHECKS)


def test_integrity_checks_are_blocking_errors():
    specs = {spec.key.asset_key.to_user_string() + "/" + spec.key.name: spec
             for assets_def in defs.assets if hasattr(assets_def, "check_specs") for spec in assets_def.check_specs}
    assert {name for name, spec in specs.items() if spec.blocking} == BLOCKING
    from result_assets.assets.checks import CHECKS as BY_ID

    assert {f"{c.asset}/{c.name}": c.severity.value for c in BY_ID.values() if c.blocking} == dict.fromkeys(
        BLOCKING, "ERROR")


def test_the_stored_assets_load_through_the_store_io_manager():
    by_key = specs()
    loaded = {key for key, spec in by_key.items() if spec.metadata.get("dagster/io_manager_key") == "store_io_manager"}
    assert loaded == {"signal_table", "curve_table", "catalog_entry"}


def test_jobs_and_schedules():
    jobs = {"migrate_job", "migrate_task_list_job", "store_maintenance_job", "report_saves_job"}
    assert {job.name for job in defs.jobs} == jobs
    assert defs.resolve_job_def("migrate_job").partitions_def.name == "tasks"  # range runs over task partitions
    assert defs.resolve_job_def("migrate_task_list_job").partitions_def is None  # an explicit list instead
    for name in jobs:
        assert defs.resolve_job_def(name).executor_def.name == "in_process", name
    assert [(s.name, s.job_name) for s in defs.schedules] == [("store_maintenance_schedule", "store_maintenance_job")]


def test_sensor():
    assert [s.name for s in defs.sensors] == ["new_task_sensor", "saved_results_sensor"]
    sensor = defs.resolve_sensor_def("new_task_sensor")
    assert [job.name for job in sensor.jobs] == ["migrate_task_list_job"]
    assert sensor.minimum_interval_seconds == 30


def test_resources():
    assert {key: type(value) for key, value in defs.resources.items()} == RESOURCES


def test_sensor_default_status_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RESULT_SOURCE_DIR", raising=False)
    assert sensors.default_status() == DefaultSensorStatus.STOPPED
    monkeypatch.setenv("RESULT_SOURCE_DIR", str(tmp_path))
    assert sensors.default_status() == DefaultSensorStatus.RUNNING


def test_sensor_says_why_it_skips_without_a_source_dir(monkeypatch):
    monkeypatch.delenv("RESULT_SOURCE_DIR", raising=False)
    result = sensors.new_task_sensor(build_sensor_context(resources={"stores": StoresResource()}))
    assert isinstance(result, SkipReason)
    assert result.skip_message.startswith("RESULT_SOURCE_DIR is not set: ")


LOAD = """
import json
from result_assets.definitions import defs
defs = defs()
sensor = defs.resolve_sensor_def("new_task_sensor")
print(json.dumps({"default_status": sensor.default_status.value, "assets": len(defs.resolve_all_asset_keys())}))
"""


@pytest.mark.parametrize("case", ["no source dir", "source dir", "unreachable database"])
def test_loading_the_definitions_starts_no_database(case, tmp_path):
    """A fresh process (the import happens once per process) loads the code location."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS and k != "PYTHONPATH"}
    env["RESULT_ASSETS_HOME"] = str(home)
    if case == "source dir":
        env["RESULT_SOURCE_DIR"] = str(tmp_path)
    if case == "unreachable database":
        # Nothing listens on port 9: any connection attempt at load would fail the import.
        env["DATABASE_URL"] = "postgresql+psycopg2://nobody@127.0.0.1:9/nothing"
    done = subprocess.run([sys.executable, "-c", LOAD], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded["assets"] == len(TASK_ASSETS | UNPARTITIONED)
    expected = DefaultSensorStatus.RUNNING if case == "source dir" else DefaultSensorStatus.STOPPED
    assert loaded["default_status"] == expected.value
    assert not (home / "pg").exists()  # the embedded server lives there: it was never initialized


@pytest.mark.parametrize("variable, value, at_load", [
    ("RESULT_BATCH_SIZE", "lots", True),  # the backfill policy is built from it when the location loads
    ("RESULT_MAX_FILE_BYTES", "lots", False),  # only runs read it: they fail, the location stays up
    ("RESULT_WORKERS", "\u00b2", False),  # a digit to str.isdigit, not a number
])
def test_a_malformed_setting_is_one_clear_error_at_load_not_at_import(tmp_path, variable, value, at_load):
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS and k != "PYTHONPATH"}
    env.update(RESULT_ASSETS_HOME=str(tmp_path / "home"), **{variable: value})
    code = ("import result_assets.definitions as d\n"  # importing reads nothing
            "from result_assets.settings import Settings, SettingsError\n"
            "try:\n    d.defs()\n    print('LOADED')\nexcept SettingsError as exc:\n    print('ERROR', exc)\n"
            "try:\n    Settings.from_env()\nexcept SettingsError as exc:\n    print('RUN', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    error = f"{variable} must be a positive whole number, not {value!r}"
    assert done.stdout.strip().splitlines() == ([f"ERROR {error}"] if at_load else ["LOADED"]) + [f"RUN {error}"]


def test_locations_given_as_uris_are_folders_or_one_line_errors(tmp_path):
    """RESULT_BACKUP_DIR=file:///mnt/backups wrote the backups to ./file:/mnt/backups under
    the current folder (lost with a pod's disk); any scheme but s3:// was kept as a folder name."""
    from result_assets.settings import Settings, SettingsError

    home = {"RESULT_ASSETS_HOME": str(tmp_path / "home")}
    settings = Settings.from_env({**home, "RESULT_BACKUP_DIR": f"file://{tmp_path}/my%20backups",
                                  "RESULT_STORE_ROOT": f"file://{tmp_path}/store"})
    assert (settings.backup_dir, settings.store_root) == (f"{tmp_path}/my backups", f"{tmp_path}/store")
    assert Settings.from_env({**home, "RESULT_BACKUP_DIR": "S3://bucket/backups"}).backup_dir == "s3://bucket/backups"
    assert Settings.from_env({**home, "RESULT_BACKUP_DIR": "file:/mnt/b"}).backup_dir == "/mnt/b"
    # a flag (`migrate --backup-dir`) or a launchpad field is read as its variable is
    assert Settings.from_env(home, backup_dir="file:///mnt/flag").backup_dir == "/mnt/flag"
    assert Settings.from_env(home, backup_dir="FILE://LOCALHOST/mnt/b").backup_dir == "/mnt/b"
    # a flag or field left empty is the variable's (it was None, and the run failed deep inside)
    assert Settings.from_env({**home, "RESULT_BACKUP_DIR": "/env/b"}, backup_dir="", store_root="").backup_dir == "/env/b"
    with pytest.raises(SettingsError, match="^RESULT_BACKUP_DIR must be a folder"):
        Settings.from_env(home, backup_dir="gs://bucket/backups")
    with pytest.raises(SettingsError, match="not 'file://fileserver/share'"):  # a host is not this machine
        Settings.from_env({**home, "RESULT_BACKUP_DIR": "file://fileserver/share"})
    for variable, value in (("RESULT_BACKUP_DIR", "gs://bucket/backups"), ("RESULT_STORE_ROOT", "http://host/t"),
                            ("RESULT_SOURCE_DIR", "s3://bucket/tasks")):
        with pytest.raises(SettingsError, match=f"^{variable} must be a folder.*not '{value}'$"):
            Settings.from_env({**home, variable: value})


def test_a_home_that_is_not_utf8_and_sizes_past_any_machine_are_one_line_errors(tmp_path):
    """A non-UTF-8 byte in the home failed every command with a traceback after its server had
    started (which stop could not stop either); RESULT_MAX_FILE_BYTES=10**23 failed every run
    with an OverflowError deep inside it."""
    from result_assets.settings import Settings, SettingsError

    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/h\xe9me")
    with pytest.raises(SettingsError, match="^RESULT_ASSETS_HOME must be a path of UTF-8 characters"):
        Settings.from_env({"RESULT_ASSETS_HOME": odd})
    home = {"RESULT_ASSETS_HOME": str(tmp_path / "home")}
    with pytest.raises(SettingsError, match="^RESULT_STORE_ROOT must be a path of UTF-8 characters"):
        Settings.from_env({**home, "RESULT_STORE_ROOT": odd})
    for variable in ("RESULT_MAX_FILE_BYTES", "RESULT_BATCH_SIZE", "RESULT_READ_CACHE_MB", "RESULT_SERVING_CACHE_MB",
                     "RESULT_WORKERS"):
        with pytest.raises(SettingsError, match=f"^{variable} must be at most [0-9,]+, not '99999999999999999999999'$"):
            Settings.from_env({**home, variable: "99999999999999999999999"})
    assert Settings.from_env({**home, "RESULT_MAX_FILE_BYTES": str(1 << 40)}).max_file_bytes == 1 << 40
