"""The code a number depends on, as a hash: so a number computed by other code never passes as current.

    fingerprint("encoders.retrievers.bm25")     # -> "5d41c0..." (20 hex)

A module's fingerprint covers its own source and every project module it imports, transitively
(top-level and function-local imports alike), so BM25's result key moves when ``encoders/bm25.py``
or ``retrieval/beir.py``'s ``doc_text`` changes, and not when the leaderboard or ColBERT's code does.
Each module counts by its syntax tree without docstrings (``ast.dump``): comments, blank lines,
formatting and docstrings never move a number, so editing them invalidates nothing. Third-party
code is keyed by its version where it is used (``encoders.loading.maths_versions``, ``bm25s``, ...).

"Project module" means a ``.py`` file under the repository root (``ROOT``: the folder holding
``retrieval/``), found from its dotted name without importing it; a module elsewhere (a retriever
defined in a script run as ``__main__``) counts by the file ``sys.modules`` has for it.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """``"retrieval.beir"`` -> ``ROOT/retrieval/beir.py`` (or a package's ``__init__.py``); None if not a project module."""
    parts = name.split(".")
    for cand in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if cand.is_file():
            return cand
    mod = sys.modules.get(name)
    file = getattr(mod, "__file__", None)
    if file and Path(file).suffix == ".py" and Path(file).resolve().is_relative_to(root) and ".venv" not in Path(file).parts:
        return Path(file)
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@lru_cache(maxsize=None)
def _parsed(path: Path, mtime_ns: int, size: int) -> tuple[str, tuple[tuple[str, int], ...]]:
    """``(sha256 of the docstring-free syntax tree, imports as (dotted name, relative level))`` of one file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(a.name, 0) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            imports += [(f"{base}.{a.name}" if base else a.name, node.level) for a in node.names] + [(base, node.level)]
    return hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest(), tuple(imports)


def _parse(path: Path) -> tuple[str, tuple[tuple[str, int], ...]]:
    st = path.stat()
    return _parsed(path, st.st_mtime_ns, st.st_size)


def _absolute(name: str, level: int, importer: str, is_package: bool) -> str:
    """A possibly relative import (``from . import x`` in ``importer``) as a dotted name."""
    if level == 0:
        return name
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, name] if name else base)


def closure(*modules: str, root: Path = ROOT) -> dict[str, Path]:
    """Every project module reachable from ``modules`` by imports (themselves included): dotted name -> file."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_path(name, root)
        if path is None:
            continue
        seen[name] = path
        _, imports = _parse(path)
        for imp, level in imports:
            target = _absolute(imp, level, name, path.name == "__init__.py")
            parts = target.split(".")
            todo += [".".join(parts[: i + 1]) for i in range(len(parts))]  # a package's __init__ runs on import too
    return seen


def fingerprint(*modules: str, root: Path = ROOT) -> str:
    """A 20-hex hash of the docstring-free code of ``modules`` and everything of the project they import.

    >>> fingerprint("retrieval.codeid") == fingerprint("retrieval.codeid") and len(fingerprint("retrieval.codeid"))
    20
    """
    files = closure(*modules, root=root)
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{_parse(files[name])[0]}\n".encode())
    for name in sorted(set(modules) - set(files)):  # not a project file (an interactive session): its name alone
        h.update(f"{name}:?\n".encode())
    return h.hexdigest()[:20]


def fingerprint_of(*objects: object) -> str:
    """:func:`fingerprint` of the modules that define ``objects`` (instances or classes)."""
    return fingerprint(*sorted({(o if isinstance(o, type) else type(o)).__module__ for o in objects}))
