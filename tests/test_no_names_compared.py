"""The loop, the evaluator and the tools ask parts and attacks what they declare; none compares a registered
name as a string (issue: "one shape for every part"). The registries' own modules and the presets may name
them; the legacy rename table maps old keys (a mapping, not a comparison)."""

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
