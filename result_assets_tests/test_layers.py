"""The package's layers point down (docs/architecture.md): every import, those made inside
functions too, goes to its own layer or one below it, and only the code location imports
Dagster."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "result_assets"

# Highest first: a module may import its own layer and the layers under it.
LAYERS = {
    "command line": ["result_assets.cli"],
    "code location": ["result_assets.definitions", "result_assets.assets", "result_assets.platform"],
    "library": ["result_assets.migration", "result_assets.app"],
    "store": ["result_assets.store"],
    "legacy format": ["result_assets.legacy"],
    "settings": ["result_assets.settings", "result_assets.errors", "result_assets.processes"],
}
RANK = {prefix: rank for rank, prefixes in enumerate(reversed(LAYERS.values())) for prefix in prefixes}
CODE_LOCATION = LAYERS["code location"]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    matches = [p for p in RANK if module == p or module.startswith(p + ".")]
    return RANK[max(matches, key=len)] if matches else None


def _imports(path: Path):
    """(line, imported module) of every import in the file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from result_assets.cli import migrate` names a module
                yield node.lineno, f"{node.module}.{alias.name}"


def _modules():
    return [(path, _module(path)) for path in sorted(PACKAGE.rglob("*.py"))]


def test_every_module_has_a_layer():
    assert [m for _, m in _modules() if m != "result_assets" and _layer(m) is None] == []


def test_no_import_points_up():
    upward = []
    for path, module in _modules():
        own = _layer(module)
        if own is None:  # the package's face: it hands the application API on
            continue
        for line, imported in _imports(path):
            target = _layer(imported)
            if target is not None and target > own:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} -> {imported}")
    assert upward == []


def test_only_the_code_location_imports_dagster():
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path, module in _modules()
             if not any(module == p or module.startswith(p + ".") for p in CODE_LOCATION)
             for line, imported in _imports(path) if imported.split(".")[0] in ("dagster", "dagster_postgres")]
    assert found == []
