"""Result tables for the console (and Markdown/LaTeX for reports), via tabulate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def results_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str = "github") -> str:
    """Rows of {column: value}; floats shown with two decimals, missing cells as '-'."""
    body = [[(f"{r[c]:.2f}" if isinstance(r.get(c), float) else r.get(c, "-")) for c in columns] for r in rows]
    return tabulate(body, headers=list(columns), tablefmt=fmt, disable_numparse=True)
