"""The import graph: no circles, and each layer imports only the layers below it (docs/DESIGN: layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import faceledger

ROOT = Path(faceledger.__file__).parent
# a layer may import itself and what is listed; shared leaf modules (errors, settings, ...) go anywhere
BELOW = {
    "imaging": set(),
    "engine": {"imaging"},
    "video": {"imaging", "engine"},
    "evaluation": {"imaging", "engine", "video", "store"},  # benchmarks measure the engine and the index
    "store": set(),
    "service": {"imaging", "engine", "video", "store"},
    "api": {"service"},
    "console": {"service", "store"},
    "cli": {"imaging", "engine", "video", "evaluation", "store", "service", "api", "console"},
}
SHARED = {"errors", "settings", "profile", "testing", "__init__"}


def _modules() -> dict[str, Path]:
    out = {}
    for f in ROOT.rglob("*.py"):
        parts = f.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        base = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = base.split(".")[: len(base.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(parts + [node.module]) if node.module else ".".join(parts)
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in mods]
                found = subs + ([target] if len(subs) < len(node.names) else [])
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            graph[m].update(c for c in found if c in mods and c != m)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_each_layer_imports_only_the_layers_below() -> None:
    wrong = []
    for m, targets in _graph().items():
        layer = _layer(m)
        if layer in SHARED:
            continue
        for t in targets:
            other = _layer(t)
            if other != layer and other not in SHARED and other not in BELOW[layer]:
                wrong.append(f"{m} -> {t}")
    assert wrong == []


def test_the_circle_detector_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
