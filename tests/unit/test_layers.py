"""The layers: no module under src/upres imports from a layer above its own.

Read from the source (``ast``), nothing imported, so the test is fast and also
sees imports made inside functions or under ``TYPE_CHECKING``. A new top-level
package or module fails here until it is given a layer in ``LAYERS``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import upres

SRC = Path(upres.__file__).parent

# The one table of the layers is docs/ARCHITECTURE.md's "Layers" section: its
# second column, top to bottom; a module may import from its own layer and
# from any layer below.
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"


def documented_layers(text: str) -> tuple[tuple[str, ...], ...]:
    """The packages column of the first table under "## Layers", top to bottom:
    `` `wiring.py`, `cli/` `` -> ``("wiring", "cli")``."""
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    return tuple(
        tuple(
            re.sub(r"(\.py|/)$", "", name) for name in re.findall(r"`([^`]+)`", row.split("|")[2])
        )
        for row in rows
    )


LAYERS = documented_layers(ARCHITECTURE.read_text())
RANK = {name: len(LAYERS) - depth for depth, names in enumerate(LAYERS) for name in names}


def module_name(path: Path, root: Path) -> str:
    """``<root>/jobs/sql.py`` -> ``upres.db.task_store``; a package is named by its ``__init__``."""
    parts = (root.name, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """``upres.db.task_store`` -> ``jobs``; None for the package root ``upres``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the package in ``path``, relative ones
    resolved; ``from x import y`` counts as ``x.y`` (y may be a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolved(node, package)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, module) for line, module in found if module.split(".")[0] == root.name]


def _resolved(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def upward_imports(root: Path) -> list[str]:
    """Every import under ``root`` that points up a layer, as ``file:line``."""
    upward = []
    for path in sorted(root.rglob("*.py")):
        source = layer_of(module_name(path, root))
        for line, target in imports_of(path, root):
            to = layer_of(target)
            if source in RANK and to in RANK and RANK[to] > RANK[source]:
                where = path.relative_to(root)
                upward.append(f"{where}:{line} ({source}) imports {target} ({to})")
    return upward


def test_every_module_has_a_layer() -> None:
    layers = {layer_of(module_name(path, SRC)) for path in SRC.rglob("*.py")}
    unplaced = sorted(name for name in layers if name is not None and name not in RANK)
    assert not unplaced, f"give these a layer in LAYERS: {unplaced}"


def test_no_import_points_up_a_layer() -> None:
    upward = upward_imports(SRC)
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)


def test_an_upward_import_is_seen_inside_a_function_and_relative(tmp_path: Path) -> None:
    root = tmp_path / "upres"
    (root / "db").mkdir(parents=True)
    (root / "jobs").mkdir()
    (root / "db" / "ledger.py").write_text("def f():\n    from ..jobs import runner\n")
    (root / "jobs" / "runner.py").write_text("import upres.db.ledger\nfrom upres import errors\n")

    assert upward_imports(root) == ["db/ledger.py:2 (db) imports upres.jobs.runner (jobs)"]


def test_the_documented_table_is_read_whole():
    assert LAYERS[0] == ("wiring", "worker_wiring", "database", "worker_entry", "cli")
    assert LAYERS[-1] == ("errors",)
    assert ("domain", "clock") in LAYERS
