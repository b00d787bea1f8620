"""One shape for every part, kept by the source itself: the loop, the evaluator and the tools ask parts and
attacks what they declare and never compare a registered name as a string (the presets may name them; the
legacy rename table maps old keys — a mapping, not a comparison); no internal function takes more than 12
parameters (the public attack functions keep their keyword-only options); a built-in part is one file."""

from __future__ import annotations

import ast
from pathlib import Path

from irat.evaluate.attacks import ATTACKS
from irat.methods import METHODS
from irat.parts import SECTIONS

SRC = Path(__file__).resolve().parents[1] / "src" / "irat"
SUBJECTS = {"name", "kind", "method", "objective", "weighting", "radius", "scheme", "spec"}  # what holds a name


def _registered() -> set[str]:
    names = {n for r in SECTIONS.values() for n in r.names()} | set(METHODS.names()) | set(ATTACKS.names())
    return names


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for e in node.elts for s in _strings(e)]
    return []


def _subject(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute) and node.attr in ("lower",):
        node = node.value
    if isinstance(node, ast.Call):
        return _subject(node.func)
    return (isinstance(node, ast.Attribute) and node.attr in SUBJECTS) or (
        isinstance(node, ast.Name) and node.id in SUBJECTS
    )


def _compared(source: str, names: set[str]) -> list[tuple[int, list[str]]]:
    """(line, names) of every comparison of something holding a name with registered names as strings."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            hits = [s for side in sides for s in _strings(side) if s in names]
            if hits and any(_subject(s) for s in sides):
                out.append((node.lineno, hits))
    return out


def test_no_registered_name_is_compared_as_a_string():
    names = _registered()
    assert _compared('if cfg.weighting.name == "gair" or spec.kind in ("aa", "x"):\n    pass\n', names)  # not blind
    found = [
        f"{path.relative_to(SRC)}:{line} compares {hits}"
        for path in sorted(SRC.rglob("*.py"))
        for line, hits in _compared(path.read_text(encoding="utf-8"), names)
    ]
    assert not found, "\n".join(found)


PUBLIC_ATTACKS = {"pgd", "fab", "lm_pgd", "apgd_targeted", "an_pgd", "evaluate"}  # keyword-only options (foolbox)


def _too_many(source: str) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            positional = [p for p in (*a.posonlyargs, *a.args) if p.arg not in ("self", "cls")]
            n = len(positional) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
            public_attack = node.name in PUBLIC_ATTACKS and len(positional) <= 4
            if n > 12 and not public_attack:
                out.append((node.name, n))
    return out


def test_no_internal_function_takes_more_than_twelve_parameters():
    assert _too_many("def f(a, b, c, d, e, f, g, h, i, j, k, l, m): pass\n")  # not blind
    found = [
        f"{path.relative_to(SRC)}: {name} takes {n}"
        for path in sorted(SRC.rglob("*.py"))
        for name, n in _too_many(path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_a_built_in_part_is_one_file():
    """Every module of irat/parts is imported with the package (a new part file registers itself)."""
    import pkgutil
    import sys

    import irat.parts

    modules = [m.name for m in pkgutil.iter_modules(irat.parts.__path__)]
    assert {"objectives", "weighting", "bilaw", "radius"} <= set(modules)
    assert all(f"irat.parts.{m}" in sys.modules for m in modules)
