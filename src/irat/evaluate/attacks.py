"""Evaluation attack specs: parse `name[:key=value...]` into an AttackSpec with every default filled.

Names (docs/methods.md §7; the defaults and where they come from are listed in docs/evaluation.md):
natural · pgdK (CE, uniform start) · cw / cwK (PGD on the CW margin loss, κ = 50, 30 steps) ·
pgdplus (5 restarts × 40 steps, α = 0.01, robust only if correct at every step) · lmpgdK ·
apgd-ce · apgd-dlr · apgd-t · fab · fab-t · square · spsa · aa (= aa-standard) · aa-plus · aa-rand.
Options: `alpha` (absolute step), `alpha_eps` (step as a multiple of ε), `n` (attack only the first n
examples), and each attack's own parameters, e.g. `pgd20:restarts=5`, `square:n_queries=1000`,
`aa:components=apgd-ce+square` (a custom AutoAttack list).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..attacks.apgd import apgd, apgd_targeted
from ..attacks.autoattack import autoattack, component_settings, resolve_version
from ..attacks.checks import keyword_defaults
from ..attacks.fab import fab
from ..attacks.lm_pgd import lm_pgd
from ..attacks.pgd import pgd
from ..attacks.spsa import spsa
from ..attacks.square import square
from ..errors import IratError
from ..registry import Registry
from ..utils import parse_number

_CW_DEFAULT_STEPS = 30  # GAIRAT's and MAIL's CW∞ evaluation use 30 PGD steps on the CW loss


@dataclass(frozen=True)
class EvalAttack:
    """One kind of evaluation attack: its function and the options a user may set. The options' defaults
    are read from the function's own signature (the one place they are stated); `defaults` holds only
    evaluation defaults for arguments the function requires (e.g. PGD's steps)."""

    kind: str
    fn: Callable[..., Any] | None
    options: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)  # option name → the function's keyword
    black_box: bool = False  # queries outputs only (masking check: must not beat the white-box ones)
    reference: bool = False  # a strong white-box reference (masking check: PGD must not be far above it)
    step_family: bool = False  # plain gradient steps (PGD): masking checks compare it to the references and by steps
    uses_alpha: bool = False  # takes the protocol's step size α
    uses_norm: bool = True  # takes the threat model's norm (LM-PGD is ℓ∞ only)
    clean: bool = False  # no attack: the inputs as they are (`natural`)
    cascade: bool = (
        False  # components run in turn, accuracy after each reported; --backend autoattack runs the official package
    )
    budget_options: tuple[str, ...] = ()  # options that change official budgets (refused with --backend autoattack)
    check: Callable[[dict[str, Any]], None] | None = None  # refuses bad option values, before any work
    describe: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # what the record adds to its options
    runner: Callable[..., tuple[torch.Tensor, dict | None]] | None = None  # replaces `fn`'s call; returns extras too
    summary: str = ""

    def default_options(self) -> dict[str, Any]:
        """Every option with its default."""
        sig = keyword_defaults(self.fn, tuple(self.rename.get(o, o) for o in self.options)) if self.fn else {}
        return {o: self.defaults.get(o, sig.get(self.rename.get(o, o))) for o in self.options}

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        options: dict[str, Any],
        *,
        eps: float,
        norm: str,
        alpha: float | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, dict | None]:
        """Adversarial inputs for one batch (the batch itself for a clean evaluation), and what the attack
        reports besides (a cascade's robustness after each component), or None."""
        if self.clean:
            return x, None
        if self.runner is not None:
            return self.runner(model, x, y, options, eps=eps, norm=norm, generator=generator)
        assert self.fn is not None
        kw = {self.rename.get(k, k): options[k] for k in self.options}
        if self.uses_alpha:
            kw["alpha"] = alpha
        if self.uses_norm:
            kw["norm"] = norm
        elif norm != "linf":
            raise IratError(f"{self.kind} is defined for the linf threat model only")
        return self.fn(model, x, y, eps=eps, generator=generator, check_inputs=False, **kw), None


ATTACKS: Registry[EvalAttack] = Registry("evaluation attack", "--attacks")
_NAMES: list[tuple[str, str, Callable[[re.Match], dict[str, Any]]]] = []  # (name pattern, kind, preset options)


def register_attack(attack: EvalAttack, *names: str | tuple[str, Callable[[re.Match], dict[str, Any]]]) -> EvalAttack:
    """Add an evaluation attack; `names` are its names in `--attacks` (plain names, or (regex, preset)
    pairs such as ("pgd(\\d+)", lambda m: {"steps": int(m[1])})). Default name: its kind."""
    ATTACKS.register(attack.kind)(attack)
    for n in names or (attack.kind,):
        pattern, preset = (re.escape(n), lambda m: {}) if isinstance(n, str) else n
        _NAMES.append((pattern, attack.kind, preset))
    return attack


def _shown(pattern: str) -> list[str]:
    """A name pattern as the papers write it (pgd(\\d+) → pgdK)."""
    shown = {
        r"pgd(\d+)": ["pgdK"],
        r"pgdplus|pgd\+": ["pgdplus"],
        r"cw(\d*)": ["cw", "cwK"],
        r"lmpgd(\d*)": ["lmpgdK"],
        r"aa-(standard|plus|rand)": ["aa-standard", "aa-plus", "aa-rand"],
    }
    return shown.get(pattern, [pattern.replace("\\", "")])


def attack_names(kind: str | None = None) -> list[str]:
    """The names `--attacks` accepts (of one kind, or all)."""
    return [n for p, k, _ in _NAMES if kind in (None, k) for n in _shown(p)]


register_attack(EvalAttack("natural", None, clean=True, summary="clean accuracy"), "natural", "clean", "nat")


def _check_pgd(options: dict[str, Any]) -> None:
    if options["loss"] not in ("ce", "cw", "dlr"):
        raise IratError(f"pgd loss must be ce, cw or dlr, got {options['loss']!r}")


def _aa_overrides(options: dict) -> dict[str, dict]:
    """Non-official budgets for quick checks: `steps` for APGD/FAB components, `n_queries` for Square."""
    out: dict[str, dict] = {}
    if options.get("steps"):
        out.update({c: {"steps": options["steps"]} for c in ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t")})
    if options.get("n_queries"):
        out["square"] = {"n_queries": options["n_queries"]}
    return out


def components(options: dict) -> list[str] | None:
    """The AutoAttack components an `aa:components=a+b` option names (None: the version's)."""
    c = options.get("components") or ""
    return [s for s in c.split("+") if s] or None


def _check_aa(options: dict[str, Any]) -> None:
    resolve_version(options["version"], components(options))


def _describe_aa(options: dict[str, Any]) -> dict[str, Any]:
    """The components that ran, with their settings (as the record states them)."""
    comps = resolve_version(options["version"], components(options))
    settings = component_settings(options["version"], _aa_overrides(options))
    return {"components": {c: settings[c] for c in comps}}


def _run_aa(model, x, y, options, *, eps, norm, generator):
    res = autoattack(
        model,
        x,
        y,
        eps=eps,
        norm=norm,
        version=options["version"],
        components=components(options),
        batch_size=len(x) or 1,
        overrides=_aa_overrides(options),
        generator=generator,
        return_result=True,
    )
    return res.x_adv, {"robust_after": res.robust_after, "time_s": res.time_s}


register_attack(
    EvalAttack(
        "pgd",
        pgd,
        ("steps", "loss", "restarts", "start", "first_success"),
        {"steps": 20},
        rename={"first_success": "return_first_success"},
        uses_alpha=True,
        step_family=True,
        check=_check_pgd,
        summary="PGD (CE, uniform start); cw: on the CW margin loss; pgdplus: robust only if correct at every step",
    ),
    (r"pgd(\d+)", lambda m: {"steps": int(m[1])}),
    (r"pgdplus|pgd\+", lambda m: {"steps": 40, "restarts": 5, "alpha": 0.01, "first_success": True}),
    (r"cw(\d*)", lambda m: {"steps": int(m[1] or _CW_DEFAULT_STEPS), "loss": "cw"}),
)
register_attack(
    EvalAttack("lmpgd", lm_pgd, ("steps",), uses_norm=False, summary="line-search momentum PGD"),
    (r"lmpgd(\d*)", lambda m: {"steps": int(m[1] or 50)}),
)
register_attack(
    EvalAttack(
        "apgd",
        apgd,
        ("steps", "restarts", "loss", "rho", "eot_iter"),
        reference=True,
        summary="Auto-PGD, untargeted (CE or DLR)",
    ),
    "apgd-ce",
    "apgd",
    ("apgd-dlr", lambda m: {"loss": "dlr"}),
)
register_attack(
    EvalAttack(
        "apgd-t",
        apgd_targeted,
        ("steps", "restarts", "n_target_classes", "loss", "rho", "eot_iter"),
        reference=True,
        summary="Auto-PGD, targeted DLR",
    )
)
register_attack(
    EvalAttack(
        "fab",
        fab,
        ("steps", "restarts", "targeted", "n_target_classes", "alpha_max", "eta", "beta"),
        summary="FAB minimal-perturbation attack",
    ),
    "fab",
    ("fab-t", lambda m: {"targeted": True}),
)
register_attack(
    EvalAttack(
        "square", square, ("n_queries", "p_init", "restarts"), black_box=True, summary="Square Attack (black-box)"
    )
)
register_attack(
    EvalAttack("spsa", spsa, ("steps", "delta", "lr", "samples"), black_box=True, summary="SPSA with Adam (black-box)")
)
register_attack(
    EvalAttack(
        "aa",
        autoattack,
        ("version", "components", "steps", "n_queries"),
        {"components": "", "steps": None, "n_queries": None},
        reference=True,
        cascade=True,
        budget_options=("steps", "n_queries"),
        check=_check_aa,
        describe=_describe_aa,
        runner=_run_aa,
        summary="AutoAttack cascade, per-example worst case",
    ),
    "aa",
    "autoattack",
    (r"aa-(standard|plus|rand)", lambda m: {"version": m[1]}),
)
_COMMON = {"alpha": None, "alpha_eps": None, "n": None}


@dataclass
class AttackSpec:
    name: str
    kind: str
    options: dict = field(default_factory=dict)

    @property
    def attack(self) -> EvalAttack:
        return ATTACKS.get(self.kind)

    @property
    def black_box(self) -> bool:
        return self.attack.black_box

    @property
    def white_box(self) -> bool:
        return not self.attack.black_box and self.attack.fn is not None

    def alpha_for(self, eps: float, protocol_alpha: float) -> float | None:
        """The step size this attack uses: its own α, α as a multiple of ε, or the protocol's."""
        if not self.attack.uses_alpha:
            return None
        if self.options.get("alpha") is not None:
            return float(self.options["alpha"])
        if self.options.get("alpha_eps") is not None:
            return float(self.options["alpha_eps"]) * eps
        return protocol_alpha

    def config(self) -> dict:
        cfg = {"name": self.name, "kind": self.kind, **self.options}
        if self.attack.describe is not None:
            cfg.update(self.attack.describe(self.options))
        return cfg


def _base(key: str) -> tuple[str, dict]:
    """Kind and preset options for a base attack name."""
    for pattern, kind, preset in _NAMES:
        if m := re.fullmatch(pattern, key):
            return kind, preset(m)
    raise IratError(f"unknown attack {key!r}; known: {', '.join(attack_names())}")


def _coerce(kind: str, key: str, value: str, default):
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if isinstance(default, int) or key in ("n", "steps", "n_queries"):
            v = int(value)
            if v < 1:
                raise ValueError
            return v
        if isinstance(default, float) or key in ("alpha", "alpha_eps"):
            f = parse_number(value)
            if not f > 0:
                raise ValueError
            return f
        return value
    except (ValueError, IratError):
        raise IratError(
            f"attack option {key}={value!r} for {kind} is not a valid value "
            f"(expected {type(default).__name__ if default is not None else 'a number > 0'})"
        ) from None


def parse_attack(text: str) -> AttackSpec:
    """Parse `name[:key=value...]`, e.g. `pgd20`, `pgd100:alpha=0.003`, `aa:n=1000`, `square:n_queries=1000`."""
    parts = [p.strip() for p in text.strip().split(":")]
    key = parts[0].lower()
    kind, preset = _base(key)
    options = {**ATTACKS.get(kind).default_options(), **_COMMON, **preset}
    for part in parts[1:]:
        if "=" not in part:
            raise IratError(f"attack option {part!r} in {text!r} must look like key=value")
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in options:
            raise IratError(f"{key} has no option {k!r}; options: {', '.join(sorted(options))}")
        options[k] = _coerce(kind, k, v, options[k])
    check = ATTACKS.get(kind).check
    if check is not None:
        check(options)
    return AttackSpec(key, kind, options)


def run_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    *,
    eps: float,
    norm: str,
    alpha: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict | None]:
    """Adversarial inputs for one batch (x itself for a clean evaluation), plus what the attack reports besides."""
    return spec.attack.run(
        model, x, y, spec.options, eps=eps, norm=norm, alpha=spec.alpha_for(eps, alpha), generator=generator
    )


def recorded_attack(cfg: Any) -> EvalAttack | None:
    """The registered attack an evaluation record's `attacks[name]` entry ran (None: unknown or not recorded)."""
    kind = cfg.get("kind") if isinstance(cfg, dict) else None
    return ATTACKS.get(kind) if isinstance(kind, str) and kind in ATTACKS else None


def is_standard_autoattack(cfg: Any) -> bool:
    """Whether a recorded attack is AutoAttack's standard cascade, all components at their own budgets (what
    RobustBench reports), whatever name it ran under."""
    attack = recorded_attack(cfg)
    if attack is None or not attack.cascade or cfg.get("version") != "standard":
        return False
    ran = cfg.get("components")
    every = resolve_version("standard", None)
    return not any(cfg.get(o) for o in attack.budget_options) and (not ran or list(ran) == list(every))


def attack_table() -> list[dict[str, str]]:
    """One row per attack kind: its names, what it is, and its options with their defaults."""
    rows = []
    for kind in ATTACKS:
        a = ATTACKS.get(kind)
        names = ", ".join(f"`{n}`" for n in attack_names(kind))
        opts = ", ".join(f"{k}={v}" for k, v in a.default_options().items() if v not in (None, ""))
        rows.append({"names": names, "what": a.summary, "options (defaults)": opts or "–"})
    return rows
