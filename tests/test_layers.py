"""The layering rule, checked by parsing (never importing) every product module.

Layers, bottom up (CONVENTIONS.md, "A layout that shows the architecture"; issue 16):

    1 retrieval/   2 encoders/   3 benchmarks/   4 evaluate.py, train.py

A module may import its own layer and the layers below it. The checker fails on

  a. an upward import, anywhere in the file (top level, in a function, under TYPE_CHECKING);
  b. a circle: a strongly connected component of more than one module in the import graph
     (top-level and function-local edges alike);
  c. a product module importing the measurement scripts in ``benchmarks/speed/``
     (the scripts themselves may import layers 1-3, and each other);
  d. a function-local import of a project module;
  e. a function-local import of a third-party module without a trailing ``# lazy: <reason>``
     comment on its line(s). Standard-library modules may be imported locally without one.

``from pkg.mod import name`` counts as an import of the deepest module that exists:
``retrieval.beir`` for ``from retrieval.beir import load_beir`` and for ``from retrieval import beir``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = {"retrieval": 1, "encoders": 2, "benchmarks": 3, "modernretrieval": 4, "evaluate": 4, "train": 4}
PACKAGES = ("retrieval", "encoders", "benchmarks", "modernretrieval")
CLIS = ("evaluate.py", "train.py")
SPEED = "benchmarks.speed"
LAZY_REASON = re.compile(r"#\s*lazy:\s*\S")


class Import(NamedTuple):
    lineno: int
    target: str  # dotted name: the deepest project module that exists, else the name as written
    local: bool  # inside a def / async def / class, not at module top level
    has_reason: bool  # a "# lazy: <reason>" comment on the statement's line(s)


# ---------------------------------------------------------------- the checker (pure functions)


def product_files(root: Path) -> list[Path]:
    """Every product module under ``root``: the three packages (speed scripts included) and the two CLIs."""
    files = [p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py")) if "__pycache__" not in p.parts]
    return files + [root / c for c in CLIS if (root / c).is_file()]


def module_name(path: Path, root: Path = ROOT) -> str:
    """``retrieval/beir.py`` -> ``retrieval.beir``; ``encoders/__init__.py`` -> ``encoders``.

    >>> module_name(ROOT / "encoders" / "training" / "trainer.py")
    'encoders.training.trainer'
    >>> module_name(ROOT / "evaluate.py")
    'evaluate'
    """
    parts = list(path.resolve().relative_to(root.resolve()).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def known_modules(root: Path) -> set[str]:
    """All project modules, with every enclosing package (a folder without ``__init__.py`` included)."""
    mods: set[str] = set()
    for p in product_files(root):
        parts = module_name(p, root).split(".")
        mods.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return mods


def _deepest(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in modules:
            return ".".join(parts[:i])
    return None


def _resolve(name: str, modules: set[str]) -> str:
    return _deepest(name, modules) or name


def _walk(stmts: list, local: bool = False):
    """Yield (import node, is_local) for every import statement in ``stmts`` and the blocks inside them.

    Only statement blocks are visited: an import is a statement, so it never sits inside an expression.
    """
    for s in stmts:
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            yield s, local
            continue
        inner = local or isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(s, field, None)
            if isinstance(block, list):
                yield from _walk(block, inner)


def imports_of(path: Path, root: Path = ROOT, modules: set[str] | None = None) -> list[Import]:
    """Every import in ``path``, one entry per imported name, resolved to a dotted module name."""
    modules = known_modules(root) if modules is None else modules
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[Import] = []
    for node, local in _walk(ast.parse(source, filename=str(path)).body):
        text = "\n".join(lines[node.lineno - 1 : (node.end_lineno or node.lineno)])
        reason = bool(LAZY_REASON.search(text))
        if isinstance(node, ast.Import):
            targets = [_resolve(a.name, modules) for a in node.names]
        else:
            if node.level:
                base = package.split(".") if package else []
                if node.level - 1 > len(base):
                    continue  # beyond the top: Python would refuse it too
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            if not stem:
                continue
            targets = []
            for a in node.names:
                sub = _deepest(f"{stem}.{a.name}", modules) if a.name != "*" else None
                targets.append(sub if sub and sub.count(".") > stem.count(".") else _resolve(stem, modules))
        out.extend(Import(node.lineno, t, local, reason) for t in dict.fromkeys(targets))
    return out


def _layer(mod: str) -> int | None:
    return LAYERS.get(mod.split(".")[0])


def _is_speed(mod: str) -> bool:
    return mod == SPEED or mod.startswith(SPEED + ".")


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    comps.append(sorted(comp))
    return comps


def _cycle_through(a: str, b: str, graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """The shortest cycle that uses the edge a -> b, staying inside the component."""
    prev: dict[str, str | None] = {b: None}
    frontier = [b]
    while frontier and a not in prev:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, ())):
                if w in comp and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    path = [a]
    v: str | None = a
    while v != b:
        v = prev[v]  # type: ignore[index]
        path.append(v)  # type: ignore[arg-type]
    return [a] + path[::-1]  # a -> b -> ... -> a


def violations(root: Path) -> list[str]:
    """One line per offence: ``file:line  module -> imported module  (reason)``."""
    root = root.resolve()
    modules = known_modules(root)
    out: list[tuple[str, int, int, str]] = []
    edges: dict[str, set[str]] = {}
    sites: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for path in product_files(root):
        rel = path.relative_to(root).as_posix()
        me = module_name(path, root)
        try:
            found = imports_of(path, root, modules)
        except SyntaxError as e:
            out.append((rel, e.lineno or 0, 0, f"{rel}:{e.lineno or 0}  {me} -> ?  (syntax error: {e.msg})"))
            continue
        edges.setdefault(me, set())
        for imp in found:
            t = imp.target
            project = t in modules
            where = f"{rel}:{imp.lineno}  {me} -> {t}"

            def flag(rule: int, reason: str) -> None:
                out.append((rel, imp.lineno, rule, f"{where}  ({reason})"))

            if project and t != me:
                edges[me].add(t)
                sites.setdefault((me, t), []).append((rel, imp.lineno))
                if _layer(t) > _layer(me):  # type: ignore[operator]
                    flag(1, f"upward: layer {_layer(me)} imports layer {_layer(t)}")
                if _is_speed(t) and not _is_speed(me):
                    flag(3, "product imports a measurement script in benchmarks/speed/")
            if imp.local and project:
                flag(4, "function-local import of a project module")
            top = t.split(".")[0]
            if imp.local and not project and top not in sys.stdlib_module_names and not imp.has_reason:
                flag(5, "function-local third-party import without '# lazy: <reason>'")
    for comp in _sccs(edges):
        if len(comp) < 2:
            continue
        members = set(comp)
        for a in comp:
            for b in sorted(edges[a] & members):
                cycle = " -> ".join(_cycle_through(a, b, edges, members))
                for rel, line in sites[(a, b)]:
                    out.append((rel, line, 2, f"{rel}:{line}  {a} -> {b}  (circle: {cycle})"))
    return [msg for *_, msg in sorted(out)]


# ---------------------------------------------------------------- the product


def test_finds_the_product() -> None:
    mods = known_modules(ROOT)
    assert {"retrieval", "encoders", "benchmarks", "evaluate", "train"} <= mods, sorted(mods)
    assert len(product_files(ROOT)) > 20


def test_product_layers_clean() -> None:
    found = violations(ROOT)
    if found:  # pytest.fail, not assert: a plain message, no list diff
        pytest.fail(f"{len(found)} layering violation(s):\n" + "\n".join(found), pytrace=False)


# ---------------------------------------------------------------- the checker can fail


def _tree(root: Path, files: dict[str, str]) -> Path:
    for pkg in PACKAGES:
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "retrieval/io.py": "import json\n",
        "encoders/b.py": "from retrieval.io import cache_key\nfrom retrieval import io\nimport numpy\n",
        "benchmarks/x.py": "from encoders import b\nfrom . import y\n",
        "benchmarks/y.py": "from ..retrieval import io\n",
        "benchmarks/speed/__init__.py": "",
        "benchmarks/speed/t.py": "import benchmarks.x\nfrom benchmarks.speed import u\n",
        "benchmarks/speed/u.py": "",
        "evaluate.py": "import benchmarks.x\nimport encoders\n",
    })
    assert violations(root) == []


def test_module_names_and_resolution(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "retrieval/beir.py": "",
        "encoders/training/__init__.py": "",
        "encoders/training/trainer.py": (
            "from retrieval import beir\nfrom retrieval.beir import load_beir\nimport encoders\n"
            "from . import missing\nfrom .. import training\nfrom ..training.trainer import x\nimport os.path\n"
        ),
    })
    path = root / "encoders/training/trainer.py"
    assert module_name(path, root) == "encoders.training.trainer"
    assert module_name(root / "encoders/training/__init__.py", root) == "encoders.training"
    assert [i.target for i in imports_of(path, root)] == [
        "retrieval.beir", "retrieval.beir", "encoders", "encoders.training",
        "encoders.training", "encoders.training.trainer", "os.path",
    ]


def test_upward_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"retrieval/a.py": "import encoders.b\n", "encoders/b.py": ""})
    assert violations(root) == ["retrieval/a.py:1  retrieval.a -> encoders.b  (upward: layer 1 imports layer 2)"]


def test_upward_import_under_type_checking(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "encoders/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from benchmarks.c import C\n",
        "benchmarks/c.py": "",
    })
    assert violations(root) == ["encoders/b.py:3  encoders.b -> benchmarks.c  (upward: layer 2 imports layer 3)"]


def test_speed_script_importing_a_cli_is_upward(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"benchmarks/speed/t.py": "import evaluate\n", "evaluate.py": ""})
    assert violations(root) == [
        "benchmarks/speed/t.py:1  benchmarks.speed.t -> evaluate  (upward: layer 3 imports layer 4)"
    ]


def test_circle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"benchmarks/p.py": "import benchmarks.q\n", "benchmarks/q.py": "from . import p\n"})
    assert violations(root) == [
        "benchmarks/p.py:1  benchmarks.p -> benchmarks.q  (circle: benchmarks.p -> benchmarks.q -> benchmarks.p)",
        "benchmarks/q.py:1  benchmarks.q -> benchmarks.p  (circle: benchmarks.q -> benchmarks.p -> benchmarks.q)",
    ]


def test_circle_hidden_in_a_function(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "benchmarks/p.py": "from benchmarks.q import f\n",
        "benchmarks/q.py": "def f():\n    from benchmarks.r import g\n",
        "benchmarks/r.py": "import benchmarks.p\n",
    })
    cycle = "benchmarks.q -> benchmarks.r -> benchmarks.p -> benchmarks.q"
    assert "benchmarks/q.py:2  benchmarks.q -> benchmarks.r  (function-local import of a project module)" in violations(root)
    assert f"benchmarks/q.py:2  benchmarks.q -> benchmarks.r  (circle: {cycle})" in violations(root)
    assert sum("(circle:" in v for v in violations(root)) == 3


def test_product_importing_speed(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"benchmarks/x.py": "import benchmarks.speed.y\n", "benchmarks/speed/y.py": ""})
    assert violations(root) == [
        "benchmarks/x.py:1  benchmarks.x -> benchmarks.speed.y  (product imports a measurement script in benchmarks/speed/)"
    ]


def test_cli_importing_speed_package(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"train.py": "from benchmarks import speed\n", "benchmarks/speed/__init__.py": ""})
    assert violations(root) == [
        "train.py:1  train -> benchmarks.speed  (product imports a measurement script in benchmarks/speed/)"
    ]


def test_local_project_import(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "retrieval/io.py": "",
        "encoders/b.py": "def f():\n    from retrieval.io import cache_key  # lazy: no excuse for our own code\n",
    })
    assert violations(root) == ["encoders/b.py:2  encoders.b -> retrieval.io  (function-local import of a project module)"]


def test_local_import_in_a_method(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"retrieval/io.py": "", "retrieval/m.py": "class K:\n    def f(self):\n        import retrieval.io\n"})
    assert violations(root) == ["retrieval/m.py:3  retrieval.m -> retrieval.io  (function-local import of a project module)"]


def test_local_third_party_needs_a_reason(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "encoders/b.py": (
            "def f():\n    import torch\n"
            "def g():\n    import torch  # lazy: heavy\n"
            "def h():\n    import faiss  # lazy:\n"
            "def i():\n    from transformers import (  # lazy: optional extra\n        AutoModel,\n    )\n"
            "async def j():\n    import mteb.tasks\n"
        ),
    })
    assert violations(root) == [
        "encoders/b.py:2  encoders.b -> torch  (function-local third-party import without '# lazy: <reason>')",
        "encoders/b.py:6  encoders.b -> faiss  (function-local third-party import without '# lazy: <reason>')",
        "encoders/b.py:12  encoders.b -> mteb.tasks  (function-local third-party import without '# lazy: <reason>')",
    ]


def test_local_stdlib_and_top_level_guards_are_fine(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "retrieval/io.py": (
            "try:\n    import faiss\nexcept ImportError:\n    faiss = None\n"
            "if faiss is None:\n    import numpy\n"
            "def f():\n    import json\n    from os import path\n    import concurrent.futures\n"
        ),
    })
    assert violations(root) == []


def test_syntax_error_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"retrieval/bad.py": "def f(:\n"})
    assert [v.split("  (")[0] for v in violations(root)] == ["retrieval/bad.py:1  retrieval.bad -> ?"]
