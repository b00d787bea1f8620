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

from . import attacks, data, models
from .api import fit
from .checkpoints import load_model
from .config import Config
from .errors import IratError
from .evaluate import evaluate
from .evaluate.attacks import EvalAttack, register_attack
from .models import create_model
from .parts import (
    Crafted,
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
    "Crafted",
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
