"""The papers' evaluation protocols as named suites (docs/methods.md §7).

Step sizes are stated as multiples of ε so a suite stays meaningful at any ε; at the papers'
ε = 8/255 they equal the papers' values: MAIL α = 0.003 (= 0.095625 ε), MWPB α = 1/255 (= ε/8),
GAIRAT and BiLAW α = ε/4. PGD+ keeps its absolute α = 0.01 (GAIRAT).
"""

from __future__ import annotations

from ..errors import IratError

_MAIL_ALPHA = f"alpha_eps={0.003 / (8 / 255):.6g}"

SUITES: dict[str, list[str]] = {
    # MAIL: natural, PGD-100, APGD-CE, CW∞, AutoAttack
    "mail": ["natural", f"pgd100:{_MAIL_ALPHA}", "apgd-ce", f"cw30:{_MAIL_ALPHA}", "aa"],
    # GAIRAT: natural, PGD-20, PGD+
    "gairat": ["natural", "pgd20:alpha_eps=0.25", "pgdplus"],
    # MWPB: natural, PGD-20, CW∞, AutoAttack, Square, SPSA
    "mwpb": ["natural", "pgd20:alpha_eps=0.125", "cw20:alpha_eps=0.125", "aa", "square", "spsa"],
    # BiLAW: natural, PGD-20, AutoAttack on the first 1000 test examples
    "bilaw": ["natural", "pgd20:alpha_eps=0.25", "aa:n=1000"],
    # a quick screen: the two strongest cheap white-box components
    "fast": ["natural", "apgd-ce", "apgd-t"],
    # everything irat has
    "full": [
        "natural",
        "pgd20",
        "pgd100",
        "cw",
        "pgdplus",
        "lmpgd50",
        "apgd-ce",
        "apgd-dlr",
        "apgd-t",
        "fab-t",
        "square",
        "spsa",
        "aa",
    ],
}


def suite_attacks(name: str) -> list[str]:
    try:
        return list(SUITES[name.lower()])
    except KeyError:
        raise IratError(f"unknown suite {name!r}; known: {', '.join(SUITES)}") from None
