"""Layers look only down, and no import cycle joins two files.

inlet's own imports count wherever they are written (inside functions too); those under
`if TYPE_CHECKING:` do not (they never run). The layers, bottom first:

    base < connectors < config < storage < index < sync < server < app

- base: errors, process (listen, signals), logs, terminal: no other inlet module.
- connectors: the document model, the connector kit and the connectors (they read no config file).
- config: `inlet.config`, which knows the connector types to check their tables.
- storage, index, sync, server: the packages of those names (`status` reads sync's state for the
  server and the CLI, so it sits with sync).
- app: the commands and the composition root (`cli`, `compose`, `demo`, `migrate`, `progress`), and
  the connector conformance suite (`connectors/testing.py`), which configures a source as a user
  does, through `inlet.config`.

`sandbox` (the emulated services) is a tool beside the layers: it may use base, config and storage
(its private files), and only the app (`inlet sandbox`, `inlet demo`) uses it. The root package
`inlet/` holds modules of several layers, so each of its modules is listed below by role: a new
module there must be given one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "inlet": "inlet",
    "connectors": "inlet.connectors",
    "storage": "inlet.storage",
    "index": "inlet.index",
    "sync": "inlet.sync",
    "server": "inlet.server",
    "sandbox": "inlet.sandbox",
}
ORDER = ["base", "connectors", "config", "storage", "index", "sync", "server", "app"]
ROOT_MODULES = {  # by role: the root package's modules, and one module placed above its package
    "inlet": "base",
    "inlet.errors": "base",
    "inlet.process": "base",
    "inlet.logs": "base",
    "inlet.terminal": "base",
    "inlet.config": "config",
    "inlet.status": "sync",
    "inlet.cli": "app",
    "inlet.__main__": "app",
    "inlet.compose": "app",
    "inlet.demo": "app",
    "inlet.migrate": "app",
    "inlet.progress": "app",
    "inlet.connectors.testing": "app",
}
SANDBOX_MAY_USE = {"base", "config", "storage"}


def module_of(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    return ".".join([FOLDERS[folder], *[p for p in rest if p != "__init__"]])


def files() -> dict[str, Path]:
    return {module_of(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The inlet modules `module` imports, at any depth, outside `if TYPE_CHECKING:` blocks."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            names = [name, *(f"{name}.{a.name}" for a in node.names)]
        found.update(n for n in names if n in known and n != module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def graph() -> dict[str, set[str]]:
    modules = files()
    known = set(modules)
    return {m: {t for t in imports(m, p, known) if not m.startswith(t + ".")} for m, p in modules.items()}


def layer(module: str) -> str:
    top = module.split(".")[1] if module.count(".") else ""
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    if top in FOLDERS and top != "inlet":
        return top
    assert module in ROOT_MODULES, f"{module}: give this module of the root package a layer in ROOT_MODULES"
    return ROOT_MODULES[module]


def test_every_import_looks_down() -> None:
    upward = []
    for module, targets in graph().items():
        mine = layer(module)
        for target in targets:
            theirs = layer(target)
            if mine == theirs:
                continue
            if mine == "sandbox":
                ok = theirs in SANDBOX_MAY_USE
            elif theirs == "sandbox":
                ok = mine == "app"
            else:
                ok = ORDER.index(theirs) < ORDER.index(mine)
            if not ok:
                upward.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycle_between_files() -> None:
    edges = graph()
    done: set[str] = set()

    def walk(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join([*trail[trail.index(node) :], node]))
        if node in done:
            return
        for target in sorted(edges.get(node, ())):
            walk(target, [*trail, node])
        done.add(node)

    for module in sorted(edges):
        walk(module, [])


def test_no_import_cycle_between_packages() -> None:
    """The same graph with every file replaced by its top-level package (the root's by `inlet`'s role)."""
    packages: dict[str, set[str]] = {}
    for module, targets in graph().items():
        packages.setdefault(layer(module), set()).update(layer(t) for t in targets if layer(t) != layer(module))
    reach: dict[str, set[str]] = {}

    def reachable(package: str, trail: tuple[str, ...] = ()) -> set[str]:
        assert package not in trail, "package cycle: " + " -> ".join([*trail, package])
        if package not in reach:
            out: set[str] = set()
            for target in sorted(packages.get(package, ())):
                out |= {target, *reachable(target, (*trail, package))}
            reach[package] = out
        return reach[package]

    for package in packages:
        reachable(package)
