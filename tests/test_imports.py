"""The package's import graph: no cycles among module-level imports; low-level modules stay low.

The graph is read from the source (ast), not by importing: an edge A → B for every
`import`/`from … import` in A that names module B of the package. Module-level means everything
that runs when A is imported (module body, `if`/`try` blocks, class bodies), but not function
bodies and not `if TYPE_CHECKING:` blocks. The implicit import of a module's parent packages is
not an edge: every module would otherwise sit on a cycle through `natural_thoughts/__init__.py`.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import natural_thoughts

PACKAGE = natural_thoughts.__name__


def _modules() -> dict[str, Path]:
    """Every module of the package: name → source file."""
    found = {PACKAGE: Path(natural_thoughts.__file__)}
    for info in pkgutil.walk_packages(natural_thoughts.__path__, prefix=f"{PACKAGE}."):
        folder = Path(info.module_finder.path)  # type: ignore[union-attr]
        leaf = info.name.rsplit(".", 1)[1]
        found[info.name] = folder / leaf / "__init__.py" if info.ispkg else folder / f"{leaf}.py"
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module (only those run at import time when `module_level`)."""
    out: list[ast.Import | ast.ImportFrom] = []
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if module_level and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def import_graph(module_level: bool = True) -> dict[str, set[str]]:
    """Module → the package modules it imports."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8")), module_level):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    parts = name.split(".")[: len(name.split(".")) - node.level + is_pkg]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a → … → a) per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, set(c), c[0]) for c in components]


def _cycle_in(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """A shortest path start → … → start inside one component (breadth first)."""
    paths = {w: [start, w] for w in graph[start] if w in members}
    frontier = list(paths)
    while start not in paths:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return paths[start]


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen, todo = {start}, [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen - {start}


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.answers" in graph[f"{PACKAGE}.verify"]
    assert f"{PACKAGE}.selectors.base" in graph[f"{PACKAGE}.selectors.difficulty"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles_at_module_level() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_answers_and_verify_reach_no_stage_even_through_function_level_imports() -> None:
    """The low-level answer logic never pulls in models, annotators or selectors (the old cycle ran
    annotate → selectors.difficulty → verify → annotate.judge → annotate.runner → annotate)."""
    graph = import_graph(module_level=False)
    high = tuple(f"{PACKAGE}.{m}" for m in ("annotate", "selectors", "generate", "llm.backends", "llm.runner",
                                            "pipeline"))
    for start in (f"{PACKAGE}.answers", f"{PACKAGE}.verify"):
        reached = sorted(m for m in _reach(graph, start) if m.startswith(high))
        assert not reached, f"{start} reaches {reached}"


def test_no_import_cycles_even_through_function_level_imports() -> None:
    cycles = find_cycles(import_graph(module_level=False))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_model_call_layer_sits_below_every_stage() -> None:
    """`llm/` serves generation, annotation and every later pass; it never reaches up to them."""
    graph = import_graph(module_level=False)
    stages = ("generate", "annotate", "selectors", "pipeline", "export", "guide", "ablate")
    for module in (m for m in graph if m.startswith(f"{PACKAGE}.llm")):
        reached = sorted(m for m in _reach(graph, module) if m.split(".")[1:2] and m.split(".")[1] in stages)
        assert not reached, f"{module} reaches {reached}"
