"""The package's layers point one way: a module imports only from its own layer or below.

The layers are drawn in docs/development.md ("Layers"); this test is what keeps them.
It reads the imports with ``ast`` (top-level and inside functions alike), so a lazy
import is no way around it.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Final

PACKAGE: Final = "b2c_monitoring"
ROOT: Final = Path(__file__).resolve().parent.parent / PACKAGE

# lowest first; an entry names a module or a package (then everything below it)
LAYERS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    (
        "vocabulary",
        frozenset(
            {
                "errors",
                "contract",
                "unix_time",
                "severity",
                "settings",
                "tls",
                "redaction",
                "auth",
                "telemetry_metrics",
                "error_patterns",
                "periodic",
                "frozen_init",
            }
        ),
    ),
    (
        "rules",
        frozenset(
            {
                "processors",
                "live_events",
                "alerting",  # the pure part; its edge modules are listed under runtime
                "alerting.rules",
                "alerting.lifecycle",
                "alerting.records",
                "alerting.schedules",
                "alerting.channels",
                "checks",
                "declared_services",
            }
        ),
    ),
    ("storage", frozenset({"storage"})),
    (
        "runtime",
        frozenset(
            {"receivers", "hub", "alerting.service", "alerting.senders", "probes", "readiness"}
        ),
    ),
    ("processes", frozenset({"processor", "api"})),
    (
        "operations",
        frozenset(
            {"stack", "dashboards", "cli", "demo", "demo_celery", "demo_services", "__main__"}
        ),
    ),
)

# The probes run inside the monitored services and install without the server's
# dependencies (pyproject's core dependencies): they import only these.
PROBES_MAY_IMPORT: Final = frozenset(
    {"probes", "errors", "contract", "redaction", "tls", "checks", "processors", "periodic"}
)


def _layer_of(module: str) -> int | None:
    """The layer index of ``b2c_monitoring.<module>``, by its longest listed prefix."""
    best: tuple[int, int] | None = None
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            matches = module == name or module.startswith(name + ".")
            if matches and (best is None or len(name) > best[0]):
                best = (len(name), index)
    return None if best is None else best[1]


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module below the package) of every import of the package in ``path``;
    ``from a import b`` counts as an import of ``a.b`` when ``b`` is a module."""
    package = _module_name(root, path).split(".") if _module_name(root, path) else []
    base = package if path.name == "__init__.py" else package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    yield node.lineno, alias.name.removeprefix(PACKAGE + ".")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join([*anchor, *([node.module] if node.module else [])])
            elif node.module == PACKAGE:
                target = ""
            elif node.module and node.module.startswith(PACKAGE + "."):
                target = node.module.removeprefix(PACKAGE + ".")
            else:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}" if target else alias.name
                if _is_module(root, candidate):
                    yield node.lineno, candidate
                elif target:
                    yield node.lineno, target


def violations(root: Path) -> list[str]:
    """Every import from a higher layer, every module in no layer, and every probe
    import outside what the light install carries."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(root, path)
        if not module:
            continue  # the package's own __init__
        layer = _layer_of(module)
        if layer is None:
            found.append(f"{module}: in no layer (add it to LAYERS and docs/development.md)")
            continue
        for line, target in _imports(root, path):
            target_layer = _layer_of(target)
            where = f"{path.relative_to(root)}:{line}"
            if target_layer is not None and target_layer > layer:
                found.append(
                    f"{where}: {module} ({LAYERS[layer][0]}) imports {target} "
                    f"({LAYERS[target_layer][0]})"
                )
            if module.startswith("probes") and target.split(".")[0] not in PROBES_MAY_IMPORT:
                found.append(f"{where}: the probes import {target}, which they do not install")
    return found


def test_layers_point_one_way() -> None:
    assert violations(ROOT) == []


def test_a_wrong_way_import_is_found(tmp_path: Path) -> None:
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    db = copy / "storage" / "db.py"
    db.write_text(db.read_text() + "\n\ndef _late() -> None:\n    from ..api import deps\n")
    probes = copy / "probes" / "__init__.py"
    probes.write_text(probes.read_text() + "\nfrom b2c_monitoring.storage import db\n")
    found = violations(copy)
    assert any("storage.db (storage) imports api.deps (processes)" in v for v in found), found
    assert any("the probes import storage.db" in v for v in found), found
    assert len(found) == 2, found


def test_a_module_in_no_layer_is_found(tmp_path: Path) -> None:
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "newcomer.py").write_text('"""Somewhere."""\n')
    assert violations(copy) == ["newcomer: in no layer (add it to LAYERS and docs/development.md)"]
