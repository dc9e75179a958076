"""The import graph inside ``models/`` (every import, those inside functions included): no file cycle, and the
product path (ingest → reconstruction → export) never reaches the synthetic cohort generator."""

from __future__ import annotations

import ast
from pathlib import Path

import models

ROOT = Path(models.__file__).parent
PRODUCT = ("models.geometry", "models.ingest", "models.recon", "models.export", "models.study", "models.phase")


def _graph() -> dict[str, set[str]]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            edges |= {t for t in targets if t in names and t not in (name, "models")}
        graph[name] = edges
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "models.geometry.sector" in graph["models.cohort.simulator"]  # a module-level import
    assert "models.geometry.slicing" in graph["models.bench.accuracy"]  # and one inside a function


def test_no_import_cycle_between_models_files() -> None:
    graph = _graph()
    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if a in _reachable(graph, b))
    assert not cycles, cycles


def test_the_product_path_never_imports_the_cohort_generator() -> None:
    graph = _graph()
    reached = {m: sorted(r for r in _reachable(graph, m) if r.startswith("models.cohort"))
               for m in graph if m.startswith(PRODUCT)}
    assert not {m: r for m, r in reached.items() if r}
