"""The pure tier stays pure: no test module in tests/unit imports the networks or
the bench, starts a process, writes a real media file or sleeps.

tests/README.md says where such a test goes instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).parent
# Modules (and their submodules) a pure test must not import.
FORBIDDEN = ("torch", "ncnn", "spandrel", "bench", "subprocess", "multiprocessing")
# tests.clips writes real media files, except this, a VideoInfo made in memory.
CLIPS_IN_MEMORY = {"probed_info"}
SLEEPERS = {"time", "asyncio"}


def _forbidden_module(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in FORBIDDEN)


def _import_offences(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [f"imports {a.name}" for a in node.names if _forbidden_module(a.name)]
    if not isinstance(node, ast.ImportFrom) or node.module is None:
        return []
    names = {alias.name for alias in node.names}
    if _forbidden_module(node.module) or node.module == "tests.clips_media":
        return [f"imports {node.module}"]
    if node.module == "tests.clips" and names - CLIPS_IN_MEMORY:
        return [f"writes media with tests.clips.{sorted(names - CLIPS_IN_MEMORY)[0]}"]
    if node.module in SLEEPERS and "sleep" in names:
        return [f"imports {node.module}.sleep"]
    return []


def _sleep_offences(node: ast.AST) -> list[str]:
    """``time.sleep(...)`` or ``asyncio.sleep(...)``, but for ``asyncio.sleep(0)``
    (one turn of the event loop, no time)."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return []
    owner, name = node.func.value, node.func.attr
    if name != "sleep" or not isinstance(owner, ast.Name) or owner.id not in SLEEPERS:
        return []
    yields = owner.id == "asyncio" and [ast.dump(a) for a in node.args] == [
        ast.dump(ast.Constant(0))
    ]
    return [] if yields else [f"calls {owner.id}.sleep"]


def offences(path: Path) -> list[str]:
    """What in the test module at ``path`` does not belong in the pure tier, in line
    order, as ``file:line what``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        line = getattr(node, "lineno", 0)
        found += [(line, what) for what in _import_offences(node) + _sleep_offences(node)]
    return [f"{path.name}:{line} {what}" for line, what in sorted(found)]


def test_the_pure_tier_imports_no_networks_processes_media_or_sleeps() -> None:
    found = [o for path in sorted(UNIT.glob("test_*.py")) for o in offences(path)]
    assert found == []


def test_each_kind_of_offence_is_seen(tmp_path: Path) -> None:
    module = tmp_path / "test_impure.py"
    module.write_text(
        "import torch.nn\n"
        "from subprocess import run\n"
        "from tests.clips import make_clip, probed_info\n"
        "import asyncio, time\n"
        "time.sleep(0.1)\n"
        "asyncio.sleep(0.05)\n"
        "asyncio.sleep(0)\n"
    )
    assert offences(module) == [
        "test_impure.py:1 imports torch.nn",
        "test_impure.py:2 imports subprocess",
        "test_impure.py:3 writes media with tests.clips.make_clip",
        "test_impure.py:5 calls time.sleep",
        "test_impure.py:6 calls asyncio.sleep",
    ]
