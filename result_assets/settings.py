"""Every knob of the project, read from the environment in one place (README "Configuration").

`Settings.from_env()` reads and validates them all at once, when a command, a run or a
resource needs them, never at import: a malformed value is one clear error naming the
variable, not a code location that fails to load. Callers that know better (the CLI's
flags, a resource's launchpad fields) pass overrides instead of writing the environment.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Partitions per run. A run costs stock Dagster about 0.2-0.35 s whatever its size (creating it,
# planned events, data-version lookups): 100 per run migrated 1,012 tasks in 31.6-31.9 s against
# 35.3 s at 50, for 8-12% more peak memory (docs/benchmarks.md "Runs of 100 tasks").
DEFAULT_BATCH_SIZE = 100
ONE_GIB = 1 << 30
DEFAULT_READ_CACHE_MB = 64
DEFAULT_SERVING_CACHE_MB = 512
# Not read here but written: with DATABASE_URL (which may hold a password), every process of the
# project sets this to the Dagster instance's URL, and the home's dagster.yaml reads it.
DAGSTER_URL_ENV = "RESULT_ASSETS_DAGSTER_URL"


# Read by runs (and commands) when they start, not by the code location's load.
_RUN_TIME_NUMBERS = ("RESULT_WORKERS", "RESULT_MAX_FILE_BYTES", "RESULT_READ_CACHE_MB", "RESULT_SERVING_CACHE_MB")


STORAGE_MODES = ("json-only", "dual-write", "postgres-only")  # RESULT_STORAGE_MODE, in switch-over order
# The settings that name a place, and the variable each is read as (a flag or launchpad field too)
_LOCATIONS = {"store_root": "RESULT_STORE_ROOT", "backup_dir": "RESULT_BACKUP_DIR", "source_dir": "RESULT_SOURCE_DIR"}


class SettingsError(ValueError):
    """A variable holds a value the project cannot use."""


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None  # None: the embedded server under home/pg
    store_root: str  # local path or s3:// URI of the Delta tables
    backup_dir: str
    source_dir: str | None
    storage_mode: str
    dagster_home: Path
    batch_size: int = DEFAULT_BATCH_SIZE  # partitions per backfill run (RESULT_BATCH_SIZE)
    workers: int = 0  # processes converting a batch (RESULT_WORKERS); 0: one per core
    max_file_bytes: int = ONE_GIB  # a larger source is quarantined, never read whole
    # Per process, the documents read most recently (store/read_cache.py); 0 turns it off.
    read_cache_mb: int = DEFAULT_READ_CACHE_MB
    # In the catalog's database, shared by every process: recent files (store/serving_cache.py); 0: off.
    serving_cache_mb: int = DEFAULT_SERVING_CACHE_MB

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        overrides = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        home = Path(overrides.pop("home", None) or env.get("RESULT_ASSETS_HOME") or "./.result_assets").absolute()
        _utf8_path("RESULT_ASSETS_HOME", str(home))  # the embedded server reads its files as UTF-8
        values = dict(
            home=home,
            database_url=env.get("DATABASE_URL") or None,
            # Absolute: a command run from another folder finds the same store (a relative root
            # read there as "the files are gone").
            store_root=_utf8_path("RESULT_STORE_ROOT", _location(env, "RESULT_STORE_ROOT") or str(home / "store")),
            backup_dir=_location(env, "RESULT_BACKUP_DIR") or str(home / "backups"),
            source_dir=_location(env, "RESULT_SOURCE_DIR", uri=False),
            storage_mode=env.get("RESULT_STORAGE_MODE") or "json-only",
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").absolute(),
            batch_size=_whole_number(env, "RESULT_BATCH_SIZE", DEFAULT_BATCH_SIZE, minimum=1, maximum=100_000),
            workers=_whole_number(env, "RESULT_WORKERS", 0, minimum=1, maximum=1024),
            max_file_bytes=_whole_number(env, "RESULT_MAX_FILE_BYTES", ONE_GIB, minimum=1, maximum=1 << 40),
            read_cache_mb=_whole_number(env, "RESULT_READ_CACHE_MB", DEFAULT_READ_CACHE_MB, minimum=0,
                                        maximum=1 << 20),
            serving_cache_mb=_whole_number(env, "RESULT_SERVING_CACHE_MB", DEFAULT_SERVING_CACHE_MB, minimum=0,
                                           maximum=1 << 20),
        )
        for field_name, variable in _LOCATIONS.items():  # a flag or a launchpad field is read as its variable
            if field_name in overrides:
                given = overrides.pop(field_name)
                if given:  # left empty: the variable's, as an empty variable is its default
                    overrides[field_name] = _location({variable: given}, variable, uri=field_name != "source_dir")
        values.update(overrides)
        return cls(**values)

    def check_storage_mode(self) -> None:
        """SettingsError unless storage_mode is one of STORAGE_MODES. Asked where the mode is
        used (the CLI; ResultManager checks the mode it is given): a process that never reads
        it (a reader, the code location, its storage) is not stopped by a typo in it."""
        if self.storage_mode not in STORAGE_MODES:
            raise SettingsError(f"RESULT_STORAGE_MODE is {self.storage_mode!r}: use one of {', '.join(STORAGE_MODES)}")

    @classmethod
    def for_definitions(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        """What the code location needs when it loads (RESULT_BATCH_SIZE, RESULT_SOURCE_DIR),
        or a sensor when it ticks, validated. The numbers only runs use are left to the runs,
        which read them when they start: a bad one fails those runs with its name, not the
        load of the whole code location nor every tick of its sensors."""
        env = os.environ if environ is None else environ
        return cls.from_env({k: v for k, v in env.items() if k not in _RUN_TIME_NUMBERS}, **overrides)

    @property
    def pg_dir(self) -> Path:
        return self.home / "pg"

    @property
    def conversion_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


def _location(env: Mapping[str, str], name: str, uri: bool = True) -> str | None:
    """A folder as an absolute path (a file: URI too); an s3:// URI as it is (its scheme in
    lower case, as every reader of it expects). Any other scheme is an error: it was taken for a
    folder name, relative to the current folder."""
    value = env.get(name)
    if not value:
        return None
    if not _URI_SCHEME.match(value) and value[:5].lower() != "file:":
        return str(Path(value).absolute())
    parts = urlsplit(value)
    kind = parts.scheme.lower()
    if kind == "file" and parts.netloc.lower() in ("", "localhost") and parts.path:
        return str(Path(unquote(parts.path)).absolute())
    if uri and kind == "s3" and parts.netloc:
        return "s3://" + value[len("s3://"):]
    allowed = "a folder, a file: URI or s3://bucket/prefix" if uri else "a folder or a file: URI"
    raise SettingsError(f"{name} must be {allowed}, not {value!r}")


def source_folder(value: str, name: str = "--source-dir") -> str:
    """A source folder given on the command line, read as RESULT_SOURCE_DIR is (a file: URI too)."""
    return _location({name: value}, name, uri=False)


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # a folder name may hold "://" further on


def _utf8_path(name: str, path: str) -> str:
    """A path the embedded server and the Delta tables can use: they read it as UTF-8."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{name} must be a path of UTF-8 characters, not {path!r}") from None
    return path


def _whole_number(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:  # "²" is a digit to isdigit()
        kind = "a positive whole number" if minimum > 0 else "a whole number (0: off)"
        raise SettingsError(f"{name} must be {kind}, not {text!r}")
    if int(text) > maximum:  # past it, a size overflowed deep inside a run
        raise SettingsError(f"{name} must be at most {maximum:,}, not {text!r}")
    return int(text)
