"""The Dagster instance at DAGSTER_HOME, created on first use: stock dagster-postgres storage,
as the instance of a team's existing deployment has (docs/scaling.md)."""
from __future__ import annotations

import json
import os
import weakref

from result_assets.settings import DAGSTER_URL_ENV, Settings, SettingsError
from result_assets.store.backups import write_atomic

# pg advisory lock: one process at a time opens the instance (a fresh one creates its tables).
_INSTANCE_LOCK = 7205

_WRITTEN_BY_US = "# Written by result-assets"


# Opt-in, for an instance of its own only: the project's tuned storage (a pooled event log that
# batches check evaluations; assets/dagster_internals.py). Put this `storage:` block in a
# dagster.yaml without the first line above, so that result-assets leaves the file alone.
TUNED_STORAGE_YAML = """\
storage:
  custom:
    module: result_assets.platform.dagster_storage
    class: ResultAssetsStorage
    config: {}
"""


def dagster_yaml(settings: Settings) -> str:
    """The instance config of a home: stock dagster-postgres storage on the embedded server's
    `result_dagster` database (a Unix socket URL, no password, so `dagster dev` needs nothing
    else), or on DATABASE_URL's database, read from RESULT_ASSETS_DAGSTER_URL."""
    from result_assets.store.postgres import dagster_url

    if settings.database_url:
        url = f"\n      env: {DAGSTER_URL_ENV}"
    else:
        url = " " + json.dumps(dagster_url(settings))
    return f"""\
{_WRITTEN_BY_US} from its settings, and rewritten when they change (remove this line
# to keep your own edits). Stock dagster-postgres storage, as an existing deployment has.
storage:
  postgres:
    postgres_url:{url}
telemetry:
  enabled: false
nux:
  enabled: false
"""


def ensure_dagster_home(settings: Settings) -> None:
    """Point DAGSTER_HOME at the project's instance and write its dagster.yaml: if absent, or
    if result-assets wrote it (an earlier release's default included) for other settings."""
    from result_assets.store.postgres import dagster_url

    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    wanted = dagster_yaml(settings)
    current = config.read_text(errors="replace") if config.exists() else None  # ours or not: not YAML is the user's
    if current is None or (current.startswith(_WRITTEN_BY_US) and current != wanted):
        write_atomic(config, wanted.encode())  # whole or not at all, for a process reading it
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    if settings.database_url:
        os.environ[DAGSTER_URL_ENV] = dagster_url(settings)
    # Public Dagster settings for the runs this process creates (a team sets them on its
    # daemon and run workers too; deploy/). A step's materializations are written in batches,
    # and a range run plans one event per asset, not one per asset and partition.
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "100")
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")


def get_instance(settings: Settings | None = None):
    from dagster import DagsterInstance

    settings = settings or Settings.from_env()
    ensure_dagster_home(settings)
    # The first use of a fresh instance creates its storage's tables: two processes doing it
    # at once fail in Dagster's own migration ("type alembic_version already exists"), as a
    # `migrate` and a `maintain` started together on a new home did. The lock is the catalog's
    # (every process of the project opens that database).
    from result_assets.store.catalog import Catalog
    from result_assets.store.postgres import catalog_url, error_line

    with Catalog(catalog_url(settings)).advisory_lock(_INSTANCE_LOCK, wait=True):
        try:
            return DagsterInstance.get()
        except Exception as exc:
            if _missing_driver(exc):
                raise SettingsError(
                    f"{settings.dagster_home / 'dagster.yaml'}: its storage names no database driver, and "
                    "SQLAlchemy's default (psycopg 3) is not installed: add `scheme: postgresql+psycopg2` to its "
                    "postgres_db block (or write postgres_url as postgresql+psycopg2://...)") from exc
            if not _config_error(exc):
                raise
            raise SettingsError(f"{settings.dagster_home / 'dagster.yaml'}: {error_line(exc)}") from exc


def _missing_driver(exc: BaseException) -> bool:
    """A stock dagster-postgres config without a scheme: SQLAlchemy then loads psycopg (3),
    which this project does not install (it speaks psycopg2)."""
    return isinstance(exc, ModuleNotFoundError) and exc.name == "psycopg"


def _config_error(exc: BaseException) -> bool:
    """The instance's dagster.yaml cannot be read (not YAML, not text, not a config Dagster
    takes): the user's file to fix, said in one line, not a traceback of Dagster's."""
    import yaml
    from dagster import DagsterInvalidConfigError

    return isinstance(exc, (yaml.YAMLError, DagsterInvalidConfigError, UnicodeDecodeError))


_holding: "weakref.WeakSet" = weakref.WeakSet()  # the instances whose storage holds its connections


def hold_connections(instance) -> None:
    """For a process that writes many events (a migration run, `migrate`): the instance's
    storage keeps its connections open, as Dagster's webserver has it do, instead of opening
    one per operation (stock dagster-postgres' default, so that idle processes hold none): a
    132-task migrate opened about 1,500. Still the team's stock storage and config, through
    a public instance method. The pool lives as long as the instance object, and
    DagsterInstance.dispose() does not close it: only for an instance that lives as long as
    its process (the command's, a run worker's), never for the short-lived ones an
    application process makes to report its saves. Once per instance: each call builds new
    engines."""
    if instance in _holding:
        return
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=20)
    _holding.add(instance)
