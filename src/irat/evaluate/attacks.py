"""Evaluation attack specs: parse `name[:key=value...]` into an AttackSpec with every default filled.

Names (METHODS §7; the defaults and where they come from are listed in docs/evaluation.md):
natural · pgdK (CE, uniform start) · cw / cwK (PGD on the CW margin loss, κ = 50, 30 steps) ·
pgdplus (5 restarts × 40 steps, α = 0.01, robust only if correct at every step) · lmpgdK ·
apgd-ce · apgd-dlr · apgd-t · fab · fab-t · square · spsa · aa (= aa-standard) · aa-plus · aa-rand.
Options: `alpha` (absolute step), `alpha_eps` (step as a multiple of ε), `n` (attack only the first n
examples), and each attack's own parameters, e.g. `pgd20:restarts=5`, `square:n_queries=1000`,
`aa:components=apgd-ce+square` (a custom AutoAttack list).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..attacks.apgd import apgd, apgd_targeted
from ..attacks.autoattack import VERSIONS, autoattack, component_settings, resolve_version
from ..attacks.fab import fab
from ..attacks.lm_pgd import lm_pgd
from ..attacks.pgd import pgd
from ..attacks.spsa import spsa
from ..attacks.square import square
from ..errors import IratError
from ..utils import parse_number

BLACK_BOX_KINDS = ("square", "spsa")
_CW_DEFAULT_STEPS = 30  # GAIRAT's and MAIL's CW∞ evaluation use 30 PGD steps on the CW loss

# default options per kind; the option types are taken from these values
_DEFAULTS: dict[str, dict] = {
    "natural": {},
    "pgd": {"steps": 20, "loss": "ce", "restarts": 1, "start": "uniform", "first_success": False},
    "lmpgd": {"steps": 50},
    "apgd": {"steps": 100, "restarts": 1, "loss": "ce", "rho": 0.75, "eot_iter": 1},
    "apgd-t": {"steps": 100, "restarts": 1, "n_target_classes": 9, "loss": "dlr-targeted", "rho": 0.75,
               "eot_iter": 1},
    "fab": {"steps": 100, "restarts": 1, "targeted": False, "n_target_classes": 9, "alpha_max": 0.1, "eta": 1.05,
            "beta": 0.9},
    "square": {"n_queries": 5000, "p_init": 0.8, "restarts": 1},
    "spsa": {"steps": 100, "delta": 0.001, "lr": 0.01, "samples": 256},
    "aa": {"version": "standard", "components": "", "steps": None, "n_queries": None},
}
_COMMON = {"alpha": None, "alpha_eps": None, "n": None}
_USES_ALPHA = ("pgd",)


@dataclass
class AttackSpec:
    name: str
    kind: str
    options: dict = field(default_factory=dict)

    @property
    def black_box(self) -> bool:
        return self.kind in BLACK_BOX_KINDS

    @property
    def white_box(self) -> bool:
        return self.kind not in BLACK_BOX_KINDS and self.kind != "natural"

    def alpha_for(self, eps: float, protocol_alpha: float) -> float | None:
        """The step size this attack uses: its own α, α as a multiple of ε, or the protocol's."""
        if self.kind not in _USES_ALPHA:
            return None
        if self.options.get("alpha") is not None:
            return float(self.options["alpha"])
        if self.options.get("alpha_eps") is not None:
            return float(self.options["alpha_eps"]) * eps
        return protocol_alpha

    def config(self) -> dict:
        cfg = {"name": self.name, "kind": self.kind, **self.options}
        if self.kind == "aa":
            comps = resolve_version(self.options["version"], _components(self.options))
            settings = component_settings(self.options["version"], _aa_overrides(self.options))
            cfg["components"] = {c: settings[c] for c in comps}
        return cfg


def _base(key: str) -> tuple[str, dict]:
    """Kind and preset options for a base attack name."""
    if key in ("natural", "clean", "nat"):
        return "natural", {}
    if m := re.fullmatch(r"pgd(\d+)", key):
        return "pgd", {"steps": int(m.group(1))}
    if key in ("pgdplus", "pgd+"):
        return "pgd", {"steps": 40, "restarts": 5, "alpha": 0.01, "first_success": True}
    if m := re.fullmatch(r"cw(\d*)", key):
        return "pgd", {"steps": int(m.group(1) or _CW_DEFAULT_STEPS), "loss": "cw"}
    if m := re.fullmatch(r"lmpgd(\d*)", key):
        return "lmpgd", {"steps": int(m.group(1) or 50)}
    if key in ("apgd-ce", "apgd"):
        return "apgd", {}
    if key == "apgd-dlr":
        return "apgd", {"loss": "dlr"}
    if key == "apgd-t":
        return "apgd-t", {}
    if key == "fab":
        return "fab", {}
    if key == "fab-t":
        return "fab", {"targeted": True}
    if key in ("square", "spsa"):
        return key, {}
    if key in ("aa", "autoattack"):
        return "aa", {}
    if key.startswith("aa-") and key[3:] in VERSIONS:
        return "aa", {"version": key[3:]}
    raise IratError(f"unknown attack {key!r}; known: natural, pgdK (e.g. pgd20), cw, cwK, pgdplus, lmpgdK, "
                    f"apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square, spsa, aa, aa-plus, aa-rand")


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
            v = parse_number(value)
            if not v > 0:
                raise ValueError
            return v
        return value
    except (ValueError, IratError):
        raise IratError(f"attack option {key}={value!r} for {kind} is not a valid value "
                        f"(expected {type(default).__name__ if default is not None else 'a number > 0'})") from None


def parse_attack(text: str) -> AttackSpec:
    """Parse `name[:key=value...]`, e.g. `pgd20`, `pgd100:alpha=0.003`, `aa:n=1000`, `square:n_queries=1000`."""
    parts = [p.strip() for p in text.strip().split(":")]
    key = parts[0].lower()
    kind, preset = _base(key)
    options = {**_DEFAULTS[kind], **_COMMON, **preset}
    for part in parts[1:]:
        if "=" not in part:
            raise IratError(f"attack option {part!r} in {text!r} must look like key=value")
        k, v = (s.strip() for s in part.split("=", 1))
        if k not in options:
            raise IratError(f"{key} has no option {k!r}; options: {', '.join(sorted(options))}")
        options[k] = _coerce(kind, k, v, options[k])
    if kind == "pgd" and options["loss"] not in ("ce", "cw", "dlr"):
        raise IratError(f"pgd loss must be ce, cw or dlr, got {options['loss']!r}")
    if kind == "aa":
        resolve_version(options["version"], _components(options))
    return AttackSpec(key, kind, options)


def _aa_overrides(options: dict) -> dict[str, dict]:
    """Non-official budgets for quick checks: `steps` for APGD/FAB components, `n_queries` for Square."""
    out: dict[str, dict] = {}
    if options.get("steps"):
        out.update({c: {"steps": options["steps"]} for c in ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t")})
    if options.get("n_queries"):
        out["square"] = {"n_queries": options["n_queries"]}
    return out


def _components(options: dict) -> list[str] | None:
    c = options.get("components") or ""
    return [s for s in c.split("+") if s] or None


def run_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, *, eps: float, norm: str,
               alpha: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict | None]:
    """Adversarial inputs for one batch (x itself for `natural`), plus AutoAttack's per-component flags."""
    o = spec.options
    if spec.kind == "natural":
        return x, None
    if spec.kind == "pgd":
        return pgd(model, x, y, eps=eps, alpha=spec.alpha_for(eps, alpha), steps=o["steps"], norm=norm,
                   loss=o["loss"], start=o["start"], restarts=o["restarts"], return_first_success=o["first_success"],
                   generator=generator, check_inputs=False), None
    if spec.kind == "lmpgd":
        if norm != "linf":
            raise IratError("LM-PGD is defined for the linf threat model only")
        return lm_pgd(model, x, y, eps=eps, steps=o["steps"], generator=generator, check_inputs=False), None
    if spec.kind == "apgd":
        return apgd(model, x, y, eps=eps, norm=norm, steps=o["steps"], restarts=o["restarts"], loss=o["loss"],
                    rho=o["rho"], eot_iter=o["eot_iter"], generator=generator, check_inputs=False), None
    if spec.kind == "apgd-t":
        return apgd_targeted(model, x, y, eps=eps, norm=norm, steps=o["steps"], restarts=o["restarts"],
                             n_target_classes=o["n_target_classes"], loss=o["loss"], rho=o["rho"],
                             eot_iter=o["eot_iter"], generator=generator, check_inputs=False), None
    if spec.kind == "fab":
        return fab(model, x, y, eps=eps, norm=norm, steps=o["steps"], restarts=o["restarts"], targeted=o["targeted"],
                   n_target_classes=o["n_target_classes"], alpha_max=o["alpha_max"], eta=o["eta"], beta=o["beta"],
                   generator=generator, check_inputs=False), None
    if spec.kind == "square":
        return square(model, x, y, eps=eps, norm=norm, n_queries=o["n_queries"], p_init=o["p_init"],
                      restarts=o["restarts"], generator=generator, check_inputs=False), None
    if spec.kind == "spsa":
        return spsa(model, x, y, eps=eps, norm=norm, steps=o["steps"], delta=o["delta"], lr=o["lr"],
                    samples=o["samples"], generator=generator, check_inputs=False), None
    if spec.kind == "aa":
        res = autoattack(model, x, y, eps=eps, norm=norm, version=o["version"], components=_components(o),
                         batch_size=len(x) or 1, overrides=_aa_overrides(o), generator=generator,
                         return_result=True)
        return res.x_adv, {"robust_after": res.robust_after, "time_s": res.time_s}
    raise IratError(f"no runner for attack kind {spec.kind!r}")
