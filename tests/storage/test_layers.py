"""Storage is the bottom layer: it imports no index, sync or server module, and the index imports no
sync module; no file cycle runs through either. Imports inside functions count, `TYPE_CHECKING` ones do not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"storage": "inlet.storage", "index": "inlet.index"}


def module_of(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [p for p in rest if p != "__init__"]
    return ".".join([FOLDERS[folder], *parts])


def imports(path: Path) -> set[str]:
    """inlet modules `path` imports, at any depth, outside `if TYPE_CHECKING:` blocks."""
    module = module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("inlet"))
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base) if node.level else node.module or ""
            if name.startswith("inlet"):
                found.update(f"{name}.{a.name}" for a in node.names)
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]
    modules = {module_of(p) for p in files}
    out: dict[str, set[str]] = {}
    for path in files:
        module = module_of(path)
        out[module] = {t for t in imports(path) if t in modules and t != module and not module.startswith(t + ".")}
    return out


def test_storage_looks_only_down() -> None:
    for path in (ROOT / "storage").rglob("*.py"):
        upward = sorted(t for t in imports(path) if t.startswith(("inlet.index", "inlet.sync", "inlet.server")))
        assert not upward, f"{path.relative_to(ROOT)} imports {upward}"


def test_the_index_does_not_import_sync_or_server() -> None:
    for path in (ROOT / "index").rglob("*.py"):
        upward = sorted(t for t in imports(path) if t.startswith(("inlet.sync", "inlet.server")))
        assert not upward, f"{path.relative_to(ROOT)} imports {upward}"


def test_no_import_cycle_between_files_of_storage_and_index() -> None:
    edges = graph()
    seen: set[str] = set()

    def walk(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(node):], node]))
        if node in seen:
            return
        for target in sorted(edges.get(node, ())):
            walk(target, [*trail, node])
        seen.add(node)

    for module in sorted(edges):
        walk(module, [])
