"""No import circle among the product's modules: each layer points one way; and every
import of the product goes by its installed name.

Every ``import`` in engine/ and tui/ counts, also ones inside functions or under
``TYPE_CHECKING`` (a circle that only type checkers follow still ties the two modules).
The folders engine/ and tui/ install as ``codeup_tui.engine`` and ``codeup_tui.tui``
(pyproject.toml's package-dir): inside a package its own modules are imported relatively,
and the engine from the TUI, or anything from the tests, as ``codeup_tui.…``; a bare
``engine`` or ``tui`` would load a second copy from a source checkout and nothing at all
from an installed wheel.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# folder -> the name it installs as
PACKAGES = {"engine": "codeup_tui.engine", "tui": "codeup_tui.tui"}


def module_name(path: Path) -> str:
    folder, *parts = path.relative_to(ROOT).with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGES[folder], *parts])


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The product modules ``path`` imports (a ``from package import submodule`` counts as
    the submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for folder in PACKAGES for path in (ROOT / folder).rglob("*.py")}
    known = set(files)
    return {name: imported_modules(path, name, known) for name, path in files.items()}


def import_circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Each group of modules that import one another, directly or round a circle (Tarjan's
    strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                circles.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_the_finder_sees_a_circle():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_holds_the_known_edges():
    graph = import_graph()
    assert "codeup_tui.tui.screens" in graph["codeup_tui.tui.app"]
    assert "codeup_tui.tui.screens.main" in graph["codeup_tui.tui.screens"]
    assert "codeup_tui.tui.session" in graph["codeup_tui.tui.screens.main"]
    assert "codeup_tui.tui.edits.target" in graph["codeup_tui.tui.edits.undo"]  # relative, one level
    assert "codeup_tui.tui.history" in graph["codeup_tui.tui.edits.undo"]  # relative, two levels
    assert "codeup_tui.engine.generation" in graph["codeup_tui.tui.backend"]  # absolute, across


def test_the_engine_never_imports_the_tui():
    graph = import_graph()
    engine = [name for name in graph if name.startswith("codeup_tui.engine")]
    assert len(engine) > 50
    reaching = {name: sorted(n for n in graph[name] if n.startswith("codeup_tui.tui")) for name in engine}
    assert not {name: found for name, found in reaching.items() if found}


def test_no_import_circle_in_the_tui():
    circles = [sorted(group) for group in import_circles(import_graph())
               if any(name.startswith("codeup_tui.tui") for name in group)]
    assert circles == [], f"import circles: {circles}"


def test_no_import_circle_in_the_engine():
    circles = [sorted(group) for group in import_circles(import_graph())]
    assert circles == [], f"import circles: {circles}"


def absolute_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def refused(path: Path, module: str) -> bool:
    """Whether ``path`` may not import ``module`` absolutely."""
    if module.split(".")[0] in PACKAGES:  # `import codeup_tui.engine`: the folder's name, not the package's
        return True
    folder = path.relative_to(ROOT).parts[0]
    own = PACKAGES.get(folder)
    return own is not None and (module == own or module.startswith(own + "."))  # its own: relative


def misnamed_imports(folders: list[Path]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: {module}"
            for folder in folders for path in sorted(folder.rglob("*.py"))
            for line, module in absolute_imports(path) if refused(path, module)]


def test_the_product_is_imported_by_its_installed_names():
    assert misnamed_imports([ROOT / "engine", ROOT / "tui", ROOT / "tests"]) == []


def test_the_name_check_refuses_bare_and_own_absolute_imports(tmp_path):
    sample = tmp_path / "sample.py"
    engine, tui = "engine", "tui"  # (as variables, so no rewrite of imports takes them for code)
    sample.write_text(f"import {engine}.quants\nfrom {tui}.app import X\nfrom codeup_tui.engine import y\n"
                      "def f():\n    from .x import z\n", encoding="utf-8")
    assert [m for _line, m in absolute_imports(sample)] == ["engine.quants", "tui.app", "codeup_tui.engine"]
    assert refused(ROOT / "tests" / "engine" / "test_x.py", "engine.quants")
    assert refused(ROOT / "tui" / "app.py", "tui.screens")
    assert refused(ROOT / "tui" / "edits" / "undo.py", "codeup_tui.tui.history")
    assert refused(ROOT / "engine" / "model.py", "codeup_tui.engine")
    assert not refused(ROOT / "tui" / "app.py", "codeup_tui.engine.errors")
    assert not refused(ROOT / "tests" / "tui" / "test_x.py", "codeup_tui.tui.app")
    assert not refused(ROOT / "engine" / "model.py", "numpy")
