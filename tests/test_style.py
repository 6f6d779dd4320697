"""House style of docs/ARCHITECTURE.md, checked on the source: a docstring atop every file,
modules <= 400 lines, functions <= 60 lines, constructors <= 6 arguments, and a docstring on
every public class and function of the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("oxygen", "apps", "bench") for p in (ROOT / d).rglob("*.py"))
MAX_MODULE, MAX_FUNC, MAX_INIT_ARGS = 400, 60, 6


def _ids(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("path", FILES, ids=_ids)
def test_module(path: Path):
    src = path.read_text()
    tree = ast.parse(src)
    assert ast.get_docstring(tree), f"{_ids(path)}: add a docstring atop the file saying what it is"
    n = len(src.splitlines())
    assert n <= MAX_MODULE, f"{_ids(path)}: {n} lines > {MAX_MODULE}; split it along a real seam"


@pytest.mark.parametrize("path", FILES, ids=_ids)
def test_functions(path: Path):
    tree = ast.parse(path.read_text())
    library = _ids(path).startswith("oxygen")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where = f"{_ids(path)}:{node.lineno} {node.name}"
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNC, f"{where}: {length} lines > {MAX_FUNC}; split it"
            if node.name == "__init__":
                nargs = len(node.args.args) - 1 + len(node.args.kwonlyargs)
                assert nargs <= MAX_INIT_ARGS, f"{where}: {nargs} arguments > {MAX_INIT_ARGS}; pass a config"
        if library and isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            if not node.name.startswith("_") and node.col_offset == 0:
                assert ast.get_docstring(node), f"{_ids(path)}:{node.lineno} {node.name}: add a docstring"
