"""The tree is the architecture: app/ never imports workers/, and no module imports itself
back through others.

Imports are read from the source with `ast` (nothing is imported), including imports
inside functions, which are no way around a cycle. An edge goes from a module to every
module an import statement names: `from a.b import c` reaches `a.b`, and `a.b.c` too when
that is a module. Importing a submodule is not counted as importing its package's
`__init__` (Python runs it, but an empty `__init__` imports nothing back).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers")
#: config, errors, main and the package itself: everything else lives in a role package.
MAX_TOP_LEVEL_MODULES = 8


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imported_names(path: Path, name: str) -> set[str]:
    """Every dotted name an import statement in the file names (absolute, resolved)."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {
        name: {target for target in imported_names(path, name) if target in modules} - {name}
        for name, path in modules.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_app_never_imports_workers() -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if name.split(".")[0] == "app"
        for target in targets
        if target.split(".")[0] == "workers"
    )
    assert offenders == []


def test_no_import_cycles() -> None:
    assert find_cycles(import_graph()) == []


def test_app_keeps_few_modules_at_its_top() -> None:
    top = sorted(p.name for p in (ROOT / "app").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_workers_hold_only_task_entry_points() -> None:
    """workers/ is Celery task entry points: every module there defines tasks and little else."""
    for path in sorted((ROOT / "workers").glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        tasks = [
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef)
            and any("task" in ast.unparse(d) for d in node.decorator_list)
        ]
        assert tasks, f"{path.name} defines no Celery task"
        for task in tasks:
            assert task.end_lineno - task.lineno < 40, f"{path.name}:{task.name} is not thin"


@pytest.mark.parametrize(
    "graph, cycles",
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(graph: dict[str, set[str]], cycles: list[list[str]]) -> None:
    assert find_cycles(graph) == cycles


def test_graph_reads_function_local_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from app.queue import send\n    import workers.tasks\n")
    assert imported_names(source, "app.m") == {"app.queue", "app.queue.send", "workers.tasks"}
