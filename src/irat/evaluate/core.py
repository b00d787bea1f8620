"""`evaluate`: accuracy under a list of attacks, per-example worst case, bound checks, gradient-masking
warnings and a JSON-ready record."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .. import distributed
from ..attacks.checks import attack_mode, check_batch, check_eps, check_radius
from ..attacks.pgd import per_example_norm
from ..errors import IratError
from .attacks import AttackSpec, components, parse_attack, run_attack
from .masking import attack_warnings, model_warnings, sanity_probe
from .suites import suite_attacks

BOUND_TOL = 1e-6
BACKENDS = ("irat", "autoattack")
PRECISIONS = ("fp32", "bf16")


class Autocast(nn.Module):
    """Runs the wrapped model under bf16 autocast and returns fp32 logits (opt-in; may weaken attacks)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            out = self.module(x)
        return out.float()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted classes in eval mode, batched."""
    with attack_mode(model, "eval"):
        return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def check_bounds(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str, attack: str) -> None:
    """Refuse a result whose adversarial inputs leave the ε-ball (+1e-6) or [0,1]."""
    if x_adv.shape != x.shape:
        raise IratError(f"{attack}: adversarial batch has shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if not bool(torch.isfinite(x_adv).all()):
        raise IratError(f"{attack}: an adversarial example contains NaN or infinity; the result is refused")
    dist = per_example_norm(x_adv - x, norm)
    if bool((dist > eps + BOUND_TOL).any()) or bool((x_adv < -BOUND_TOL).any()) or bool((x_adv > 1 + BOUND_TOL).any()):
        raise IratError(
            f"{attack}: an adversarial example left the {norm} ball of radius {eps} or [0,1] "
            f"(max distance {float(dist.max()):.6g}); the result is refused"
        )


def resolve_attacks(
    attacks: Sequence[str | AttackSpec] | str | None = None, suite: str | None = None
) -> list[AttackSpec]:
    """Parse attack names (a list or a comma-separated string) and a suite into specs with unique names."""
    names: list[str | AttackSpec] = []
    if suite:
        names += suite_attacks(suite)
    if isinstance(attacks, str):
        attacks = [a for a in attacks.split(",") if a.strip()]
    names += list(attacks or [])
    specs = [a if isinstance(a, AttackSpec) else parse_attack(a) for a in names]
    if not specs:
        raise IratError("no attacks given")
    seen: dict[str, int] = {}
    for s in specs:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}#{seen[s.name]}"
    return specs


def check_options(backend: str, precision: str, batch_size: int = 1, specs: Sequence[AttackSpec] = ()) -> None:
    """Evaluation options that must be valid before any model or data is loaded."""
    if backend not in BACKENDS:
        raise IratError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise IratError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if batch_size < 1:
        raise IratError(f"batch_size must be >= 1, got {batch_size}")
    if backend == "autoattack":
        for spec in specs:
            set_budgets = [o for o in spec.attack.budget_options if spec.options.get(o)]
            if spec.attack.cascade and set_budgets:
                raise IratError(
                    f"{spec.name}: --backend autoattack runs the official package with its own budgets; "
                    f"{' and '.join(o + '=' for o in set_budgets)} {'are' if len(set_budgets) > 1 else 'is'} irat's "
                    f"quick-check {'overrides' if len(set_budgets) > 1 else 'override'} — drop "
                    f"{'them' if len(set_budgets) > 1 else 'it'}, or use --backend irat"
                )
        from .official import require_official

        require_official()


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attacks: Sequence[str | AttackSpec] | str | None = None,
    suite: str | None = None,
    eps: float,
    norm: str = "linf",
    alpha: float | None = None,
    batch_size: int = 512,
    seed: int = 0,
    device: torch.device | str | None = None,
    sanity: bool = True,
    backend: str = "irat",
    precision: str = "fp32",
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    progress: bool = False,
    store: Progress | None = None,
) -> dict:
    """Accuracy (percent) under each attack, attacking only examples still classified correctly.

    Returns a JSON-ready record {"n", "eps", "norm", "alpha", "results", "attacks", "worst_case",
    "warnings", "sanity"} plus "per_example": {attack: bool tensor of correctness}, saved apart.
    α (for PGD-family attacks without their own) defaults to ε/4 (GAIRAT, BiLAW). `sanity` adds the
    model checks and the PGD probe of `masking.py`; `backend="autoattack"` runs the official package
    for aa / aa-plus / aa-rand; `precision="bf16"` runs model and attacks under bf16 autocast.

    Each batch of each attack draws from its own generator (`batch_generator`: the seed, the attack, the
    batch's first example), so an evaluation interrupted and continued through a `store` gives the same
    record. Under torchrun the examples are split across ranks (contiguous slices), each rank attacks its
    own, and the per-example results are gathered, so every rank returns the same record. Attacks without random starts give the same per-example results as
    one process; those with random starts differ only in the draws. The sanity probe runs on rank 0.
    """
    if norm not in ("linf", "l2"):
        raise IratError(f"norm must be linf or l2, got {norm!r}")
    # the command line's checks: a radius on the [0, 1] scale for these inputs (8 for 8/255 is refused)
    check_radius(float(eps), norm, tuple(x.shape[1:]), "eps")
    specs = resolve_attacks(attacks, suite)
    check_options(backend, precision, batch_size, specs)
    if normalize is not None:  # weights that expect (x − mean)/std: attacked in pixel space through the wrapper
        from ..models.normalize import Normalized, check_normalize

        model = Normalized(model, *check_normalize(normalize))
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    x, y = x.to(dev), y.to(dev).long()
    check_batch(model, x, y)
    alpha = eps / 4 if alpha is None else float(alpha)
    check_eps(alpha, "alpha")
    warnings: list[dict] = []
    if precision == "bf16":
        model = Autocast(model)
        warnings.append(
            {
                "check": "bf16",
                "message": "evaluated under bf16 autocast: attacks may be weaker than "
                "in fp32, so robust accuracy may be overstated",
            }
        )
    ctx = distributed.context()
    gen = torch.Generator(device=dev).manual_seed(seed + 7919 * ctx.rank)
    n = len(y)
    lo, hi = distributed.shard_range(n)  # this rank's examples ([0, n) in one process)
    xs, ys = x[lo:hi], y[lo:hi]
    nat_correct = distributed.gather_cat(predict(model, xs, batch_size) == ys)
    results, configs, per_example, covered, aa_components = {}, {}, {}, {}, {}
    worst = nat_correct.clone()
    for spec in specs:
        t0 = time.perf_counter()
        cover = torch.zeros(n, dtype=torch.bool, device=dev)
        cover[: spec.options.get("n") or n] = True
        run = ShardRun(eps, norm, alpha, batch_size, seed, backend, progress and ctx.main, store or Progress(), lo)
        correct, comps, comp_time, reused_s = _attack_shard(model, xs, ys, spec, nat_correct[lo:hi], cover[lo:hi], run)
        # every rank's component names, component times and wall time (one exchange); times: the slowest rank
        # (a continued evaluation adds the time its stored batches took before the interruption)
        parts = distributed.gather_objects((sorted(comps), comp_time, time.perf_counter() - t0 + reused_s))
        elapsed = max(p[2] for p in parts)
        if ctx.enabled:
            correct = distributed.gather_cat(correct)
            names = sorted({c for p in parts for c in p[0]})
            comps = {c: distributed.gather_cat(comps.get(c, nat_correct[lo:hi].clone())) for c in names}
            comp_time = {c: max(p[1].get(c, 0.0) for p in parts) for c in names}
        if bool((correct & ~nat_correct).any()):
            raise IratError(f"{spec.name}: robust accuracy exceeds natural accuracy on some example; result refused")
        n_cov = int(cover.sum())
        n_attacked = int((nat_correct & cover).sum())
        results[spec.name] = round(100.0 * float(correct[cover].float().mean()), 4) if n_cov else 0.0
        cfg = spec.config()
        cfg["alpha"] = spec.alpha_for(eps, alpha)
        cfg.update(
            {
                "n": n_cov,
                "n_attacked": n_attacked,
                "time_s": round(elapsed, 3),
                "examples_per_s": round(n_attacked / elapsed, 2) if n_attacked and elapsed > 0 else None,
            }
        )
        if ctx.enabled:
            cfg["ranks"] = ctx.world
        if spec.attack.cascade:
            cfg["backend"] = backend
            if backend == "autoattack":
                from .official import official_version

                cfg["official_version"] = official_version()
            if comps:
                cfg["after_component"] = {c: round(100.0 * float(f[cover].float().mean()), 4) for c, f in comps.items()}
                cfg["component_time_s"] = {c: round(t, 3) for c, t in comp_time.items()}
                aa_components[spec.name] = comps
        if spec.attack.cascade and backend == "autoattack":  # what the official package ran, not irat's table
            from .official import official_settings

            cfg["components"] = official_settings(spec.options["version"], components(spec.options))
        configs[spec.name] = cfg
        per_example[spec.name] = correct
        covered[spec.name] = cover
        worst &= correct
    warnings += attack_warnings(specs, per_example, covered, nat_correct, aa_components)
    probe: dict[str, Any] = {}
    if sanity and any(not s.attack.clean for s in specs):
        checks: tuple[list[dict], dict] = ([], {})
        if ctx.main:
            more = model_warnings(model, x, y)
            probe, probe_warnings = sanity_probe(model, x, y, nat_correct, eps=eps, norm=norm, generator=gen)
            checks = (more + probe_warnings, probe)
        more, probe = distributed.broadcast_object(checks)
        warnings += more
    return {
        "n": n,
        "eps": eps,
        "norm": norm,
        "alpha": alpha if any(a.get("alpha") == alpha for a in configs.values()) else None,  # the default α, if used
        "seed": seed,
        "precision": precision,
        "backend": backend,
        "results": results,
        "attacks": configs,
        **worst_case(worst, [int(c.sum()) for c in covered.values()], n),
        "warnings": warnings,
        "sanity": probe,
        "per_example": {k: v.cpu() for k, v in per_example.items()},
    }


def worst_case(worst: torch.Tensor | Any, ns: list[int], n: int) -> dict[str, Any]:
    """The per-example worst case over the examples **every** attack ran on (attacks cover a prefix of the
    examples: `name:n=K`); an example an attack did not run on never counts as robust to it."""
    common = min([n, *ns])
    value = round(100.0 * float(worst[:common].float().mean() if torch.is_tensor(worst) else worst[:common].mean()), 4)
    return {"worst_case": value if common else 0.0, "worst_case_n": common}


class Progress:
    """Where finished batches of an evaluation are kept, so that an interrupted one continues exactly: each
    batch draws from its own generator (seeded by the evaluation's seed, the attack and the batch's first
    example), so skipping finished batches changes nothing in the others."""

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        return None

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        """Called after each finished batch."""


def batch_generator(device: torch.device, seed: int, attack: str, first: int) -> torch.Generator:
    """The generator of one batch: its draws depend on the evaluation's seed, the attack and the batch's
    first example only (not on the batches before it, which a resumed evaluation skips)."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}|{attack}|{first}".encode()).digest()[:7], "little")
    return torch.Generator(device=device).manual_seed(digest)


@dataclass(frozen=True)
class ShardRun:
    """How one attack runs on a rank's examples: the threat model, batching, seeding, the official or irat
    backend, progress, where finished batches are kept, and the rank's first example's global index."""

    eps: float
    norm: str
    alpha: float
    batch_size: int
    seed: int
    backend: str
    progress: bool
    store: Progress
    offset: int = 0


def _attack_shard(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: AttackSpec,
    nat_correct: torch.Tensor,
    cover: torch.Tensor,
    run: ShardRun,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float], float]:
    """One attack on these examples (a rank's slice under torchrun): per-example correctness, AutoAttack's
    robustness after each component, each component's time, and the seconds that batches taken from the
    `store` took when they ran. Only examples still classified correctly (and covered by the attack's
    `n`) are attacked, in batches."""
    eps, norm, alpha, batch_size, seed, backend = run.eps, run.norm, run.alpha, run.batch_size, run.seed, run.backend
    progress, store, offset = run.progress, run.store, run.offset
    correct = nat_correct.clone()
    comps: dict[str, torch.Tensor] = {}
    comp_time: dict[str, float] = {}
    reused_s = 0.0
    if spec.attack.clean:
        return correct, comps, comp_time, reused_s
    todo = (correct & cover).nonzero().squeeze(1)
    bar = tqdm(total=len(todo), desc=spec.name, unit="ex", disable=not progress, leave=False, file=sys.stderr)
    for i in range(0, len(todo), batch_size):
        sel = todo[i : i + batch_size]
        key = f"{spec.name}|{offset + int(sel[0])}"  # the batch, by its attack and first (global) example
        done = store.get(key)
        if done is not None:  # finished before an interruption: taken as it was
            correct[sel] = done["correct"].to(correct.device)
            reused_s += float(done.get("time_s", torch.tensor(0.0)))
            for comp, rob in done.items():
                if comp not in ("correct", "time_s"):
                    comps.setdefault(comp, nat_correct.clone())[sel] = rob.to(correct.device)
            bar.update(len(sel))
            continue
        t_batch = time.perf_counter()
        gen = batch_generator(x.device, seed, spec.name, offset + int(sel[0]))
        if spec.attack.cascade and backend == "autoattack":
            from .official import run_official

            xa, extra = (
                run_official(
                    model,
                    x[sel],
                    y[sel],
                    eps=eps,
                    norm=norm,
                    version=spec.options["version"],
                    components=components(spec.options),
                    seed=seed,
                    batch_size=batch_size,
                ),
                None,
            )
        else:
            xa, extra = run_attack(model, x[sel], y[sel], spec, eps=eps, norm=norm, alpha=alpha, generator=gen)
        check_bounds(xa, x[sel], eps, norm, spec.name)
        correct[sel] = predict(model, xa, batch_size) == y[sel]
        for comp, rob in (extra or {}).get("robust_after", {}).items():
            comps.setdefault(comp, nat_correct.clone())[sel] = rob
        for comp, t in (extra or {}).get("time_s", {}).items():
            comp_time[comp] = comp_time.get(comp, 0.0) + t
        took = torch.tensor(time.perf_counter() - t_batch, dtype=torch.float64)
        store.put(key, {"correct": correct[sel].cpu(), "time_s": took, **{c: r[sel].cpu() for c, r in comps.items()}})
        bar.update(len(sel))
        bar.set_postfix(robust=f"{100.0 * float(correct[cover].float().mean()):.2f}%")
    bar.close()
    if progress and comps:  # as the official package prints: the running robust accuracy after each component
        for comp, rob in comps.items():
            tqdm.write(
                f"  {spec.name}: robust accuracy after {comp}: {100.0 * float(rob[cover].float().mean()):.2f} %",
                file=sys.stderr,
            )
    return correct, comps, comp_time, reused_s
