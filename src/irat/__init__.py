"""irat — instance-reweighted adversarial training and honest robustness evaluation.

    import irat
    trainer = irat.fit("runs/mail", method="mail-at", dataset="digits", model="tinycnn", eps=0.1, epochs=30)
    model = irat.load_model("runs/trades")            # inputs in [0,1], outputs logits
    x_adv = irat.attacks.pgd(model, x, y, eps=8/255, alpha=2/255, steps=10)
    record = irat.evaluate(model, x, y, attacks=["natural", "pgd20", "cw"], eps=8/255)

Extending (docs/extending.md): subclass `irat.Weighting`, `irat.Objective` or `irat.Radius` and
register it with `@irat.register_weighting("name")` (…objective, …radius), or add an evaluation
attack with `irat.register_attack(irat.EvalAttack(...))`; load the file with `--plugin`.
"""

import sys
import types
from typing import TYPE_CHECKING, Any

# Names resolve on first use (PEP 562), so that `irat --help` and argument errors answer without importing
# PyTorch; `import irat` then `irat.fit(...)` works as before.
_LAZY = {
    "attacks": ("irat.attacks", None),
    "data": ("irat.data", None),
    "models": ("irat.models", None),
    "errors": ("irat.errors", None),
    "fit": ("irat.api", "fit"),
    "load_model": ("irat.checkpoints", "load_model"),
    "Config": ("irat.config", "Config"),
    "EPOCHS": ("irat.config", "EPOCHS"),
    "EPOCHS_BEFORE_END": ("irat.config", "EPOCHS_BEFORE_END"),
    "EPOCH_TABLE": ("irat.config", "EPOCH_TABLE"),
    "RESUMABLE": ("irat.config", "RESUMABLE"),
    "IratError": ("irat.errors", "IratError"),
    "evaluate": ("irat.evaluate", "evaluate"),
    "EvalAttack": ("irat.evaluate.attacks", "EvalAttack"),
    "register_attack": ("irat.evaluate.attacks", "register_attack"),
    "create_model": ("irat.models", "create_model"),
    "Batch": ("irat.parts", "Batch"),
    "Objective": ("irat.parts", "Objective"),
    "Radius": ("irat.parts", "Radius"),
    "RunContext": ("irat.parts", "RunContext"),
    "Step": ("irat.parts", "Step"),
    "Weighting": ("irat.parts", "Weighting"),
    "register_objective": ("irat.parts", "register_objective"),
    "register_radius": ("irat.parts", "register_radius"),
    "register_weighting": ("irat.parts", "register_weighting"),
    "load_plugin": ("irat.plugins", "load_plugin"),
    "Trainer": ("irat.train", "Trainer"),
}


class _Package(types.ModuleType):
    """`irat.evaluate` is the function, though `irat/evaluate/` is also a subpackage: importing the
    subpackage must not rebind the name to the module (the module stays in sys.modules)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "evaluate" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'irat' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    value = getattr(value, attr) if attr else value
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


if TYPE_CHECKING:
    from . import attacks, data, errors, models
    from .api import fit
    from .checkpoints import load_model
    from .config import EPOCH_TABLE as EPOCH_TABLE
    from .config import EPOCHS as EPOCHS
    from .config import EPOCHS_BEFORE_END as EPOCHS_BEFORE_END
    from .config import RESUMABLE as RESUMABLE
    from .config import Config
    from .errors import IratError
    from .evaluate import evaluate
    from .evaluate.attacks import EvalAttack, register_attack
    from .models import create_model
    from .parts import (
        Batch,
        Objective,
        Radius,
        RunContext,
        Step,
        Weighting,
        register_objective,
        register_radius,
        register_weighting,
    )
    from .plugins import load_plugin
    from .train import Trainer

__version__ = "0.1.0"
__all__ = [
    "Config",
    "Batch",
    "EvalAttack",
    "IratError",
    "Objective",
    "Radius",
    "RunContext",
    "Step",
    "Trainer",
    "Weighting",
    "attacks",
    "create_model",
    "data",
    "errors",
    "evaluate",
    "fit",
    "load_model",
    "load_plugin",
    "models",
    "register_attack",
    "register_objective",
    "register_radius",
    "register_weighting",
    "__version__",
]
