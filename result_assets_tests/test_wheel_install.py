"""The package as a wheel, installed non-editable, migrates the samples from another folder.

The suite otherwise runs against the editable checkout, where a product module could read
files of the repo (the tests' samples, say) or miss package data without anyone noticing.
Here the wheel is installed into a fresh venv with `--no-deps`; the dependencies (dagster
etc.) come from this interpreter's site-packages through a .pth file, appended after the
fresh venv's own site-packages. Python does not process .pth files of a directory added
that way, so the editable finder of the checkout stays inactive: `result_assets` can only
come from the wheel, which the test asserts.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parent / "samples"
SOURCES = ("pyproject.toml", "setup.py", "README.md", "result_assets")
LOCATION_VARS = ("RESULT_ASSETS_HOME", "DATABASE_URL", "DAGSTER_HOME", "RESULT_STORE_ROOT",
                 "RESULT_BACKUP_DIR", "RESULT_SOURCE_DIR", "RESULT_STORAGE_MODE", "RESULT_BATCH_SIZE")

CHECK_INSTALL = """
import json, sys
import result_assets
from importlib.resources import files
sys.path.append(sys.argv[1])  # the checkout, after the wheel: benchmarks/ is not part of the package
from benchmarks.event_log import tiny_task
from result_assets.legacy import validate_result
print(json.dumps({
    "file": result_assets.__file__,
    "sql": (files("result_assets") / "sql" / "reader_role.sql").is_file(),
    "tiny_task_signals": validate_result("tiny", tiny_task(0)).n_signals,
}))
"""
BENCH_ONLY_ERROR = ("result-assets: error: result-assets bench runs from a source checkout: "
                    "benchmarks/ is not part of the installed package")
STOP_SERVER = ("from result_assets.store.postgres import stop_embedded;"
               "from result_assets.settings import Settings; stop_embedded(Settings.from_env())")


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def builds_wheels_offline() -> bool:
    """True when this interpreter's setuptools builds a wheel by itself (70.1 and later have
    bdist_wheel built in; older ones need the `wheel` package)."""
    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    try:
        version("wheel")
        return (major, minor) >= (68, 0)
    except PackageNotFoundError:
        return (major, minor) >= (70, 1)


def build_wheel(work: Path) -> Path:
    # Build from a copy: setuptools writes build/ and *.egg-info beside the sources.
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    dist = work / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src]
    if builds_wheels_offline():
        run(pip_wheel + ["--no-index", "--no-build-isolation"])
    else:  # pip fetches setuptools and wheel into an isolated build env, as the editable install did
        run(pip_wheel)
    (wheel,) = dist.glob("result_assets-*.whl")
    return wheel


def fresh_venv(work: Path, wheel: Path) -> tuple[Path, Path]:
    venv = work / "fresh"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "result_assets_deps.pth").write_text("".join(f"{p}\n" for p in ours))
    return python, site


def bench_only_files(wheel: Path) -> list[str]:
    """Files of the wheel (its zip listing and its RECORD) that belong to benchmarks/, not to production."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        recorded = [line.split(",")[0] for line in archive.read(record).decode().splitlines() if line]
    return sorted({n for n in names + recorded
                   if n.startswith(("result_assets/bench/", "benchmarks/")) or n == "result_assets/corpus.py"
                   or "bench_query" in n})


def references_to_tests(path: Path, root: Path) -> list[str]:
    """Imports of result_assets_tests, and strings naming it (a path built from it), in one
    module. Docstrings and comments may mention the tests: they are not read at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names = [node.value]
        else:
            continue
        found += [f"{path.relative_to(root)}:{node.lineno}" for name in names if "result_assets_tests" in name]
    return found


def test_wheel_installed_elsewhere_migrates_the_samples(tmp_path, sample_expectations):
    started = time.perf_counter()
    wheel = build_wheel(tmp_path)
    python, site = fresh_venv(tmp_path, wheel)
    prepared = time.perf_counter() - started

    elsewhere = tmp_path / "elsewhere"  # not the repo: nothing importable from the working directory
    elsewhere.mkdir()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in LOCATION_VARS and k != "PYTHONPATH"}
    env["RESULT_ASSETS_HOME"] = str(home)

    installed = json.loads(run([python, "-c", CHECK_INSTALL, REPO], cwd=elsewhere, env=env).stdout.splitlines()[-1])
    assert Path(installed["file"]).is_relative_to(site / "result_assets")  # the wheel, not the checkout
    assert installed["sql"]  # package data shipped
    assert installed["tiny_task_signals"] == 1  # the event-log bench makes its own tasks
    # Product code must not reach into the test tree (absent from any real installation).
    assert [m for p in (site / "result_assets").rglob("*.py") for m in references_to_tests(p, site)] == []
    # Benchmarks, the corpus generator and bench-only helpers stay in the checkout.
    assert bench_only_files(wheel) == []
    assert not (site / "benchmarks").exists()

    cli = python.parent / "result-assets"
    listed = subprocess.run([cli, "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "bench" in listed.stdout, listed.stdout + listed.stderr
    bench = subprocess.run([cli, "bench", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True,
                           timeout=120)
    assert bench.returncode != 0, bench.stdout + bench.stderr
    assert bench.stderr.strip() == BENCH_ONLY_ERROR, bench.stderr  # one line, no traceback

    source = tmp_path / "source"
    shutil.copytree(SAMPLES / "tasks", source)
    try:
        migrated = run([cli, "migrate", "--source-dir", source, "--json"], cwd=elsewhere, env=env)
    finally:
        run([python, "-c", STOP_SERVER], cwd=elsewhere, env=env)  # leave no server running
    report = json.loads(migrated.stdout.splitlines()[-1])
    valid = sum(1 for e in sample_expectations.values() if e["valid"])
    assert (valid, len(sample_expectations) - valid) == (14, 8)
    assert report["tasks"] == len(sample_expectations)
    assert (report["migrated"], report["quarantined"], report["failed_runs"]) == (14, 8, 0)
    assert not (home / "pg" / "postmaster.pid").exists()  # the embedded server stopped
    print(f"wheel built and installed in {prepared:.1f} s; total {time.perf_counter() - started:.1f} s")
