"""Training from Python in one call, with the command line's precedence (defaults < method < preset <
settings):

    import irat
    trainer = irat.fit("runs/mail", method="mail-at", dataset="digits", model="tinycnn", eps=0.1, epochs=30,
                       weighting={"burn_in": 15}, **{"optim.lr": 0.05})
    trainer.history[-1]["val_pgd"], trainer.out                  # metrics rows; the run directory
    irat.evaluate(trainer.model, x, y, attacks=["natural", "aa"], eps=0.1)

Short names: dataset, data_dir, model, eps, alpha, steps, norm, lr, objective, weighting (a name or a
mapping of that section), radius, burn_in; any config key as `section.key=value` (e.g. **{"optim.lr": 0.01})
or as a section mapping. `resume=True` continues the run in `out`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .presets import build_config
from .train import Trainer

SHORT = {
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "model": "model.arch",
    "eps": "attack.eps",
    "alpha": "attack.alpha",
    "steps": "attack.steps",
    "norm": "attack.norm",
    "lr": "optim.lr",
    "burn_in": "weighting.burn_in",
}


def fit(
    out: str | Path,
    *,
    method: str | None = None,
    preset: str | None = None,
    plugins: tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
    data: tuple[Any, Any, Any, Any] | None = None,
    **settings: Any,
) -> Trainer:
    """Train (or, with resume=True, continue) a run into `out` and return its Trainer.

    data=(x_train, y_train, x_test, y_test): your own images (N×C×H×W or N×H×W×C; uint8, or floats in [0, 1],
    stored as 8-bit) and integer labels. They are written into the run (RUN/data/*.npz, the `npz` dataset
    layout) so that resume, irat eval and irat analyze find them again."""
    flat = _flatten(settings)
    if data is not None and not resume:
        flat.update({"data.dataset": "npz", "data.data_dir": str(_write_data(Path(out), data))})
    if resume:
        trainer = Trainer(None, out, resume=True, changes=list(flat.items()))  # type: ignore[arg-type]
    else:
        cfg = build_config(preset, method, list(flat.items()), list(plugins))
        trainer = Trainer(cfg, out, overwrite=overwrite)
    trainer.fit()
    return trainer


def _write_data(out: Path, data: tuple[Any, Any, Any, Any]) -> Path:
    import numpy as np

    from .errors import ConfigError
    from .rundir import run_files

    if len(data) != 4:
        raise ConfigError("data must be (x_train, y_train, x_test, y_test)")
    if run_files(out):
        raise ConfigError(f"{out} already holds a run: give another out, or resume=True (the data it recorded)")
    folder = out / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name, x, y in (("train", data[0], data[1]), ("test", data[2], data[3])):
        x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        y = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
        np.savez(folder / f"{name}.npz", x=x, y=y)
    return folder


def _flatten(settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        key = SHORT.get(key, key)
        if key in ("objective", "weighting", "radius") and isinstance(value, str):
            out[f"{key}.name"] = value
        elif isinstance(value, dict) and "." not in key:
            for k, v in _flatten({f"{key}.{kk}": vv for kk, vv in value.items()}).items():
                out[k] = v
        else:
            out[key] = value
    return out
