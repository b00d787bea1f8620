"""irat — instance-reweighted adversarial training and honest robustness evaluation.

    import irat
    model = irat.load_model("runs/trades")            # inputs in [0,1], outputs logits
    x_adv = irat.attacks.pgd(model, x, y, eps=8/255, alpha=2/255, steps=10)
    record = irat.evaluate(model, x, y, attacks=["natural", "pgd20", "cw"], eps=8/255)
"""
from . import attacks, data, models
from .config import Config
from .errors import IratError
from .evaluate import evaluate
from .models import create_model
from .checkpoints import load_model
from .train import Trainer

__version__ = "0.1.0"
__all__ = ["Config", "IratError", "Trainer", "attacks", "create_model", "data", "evaluate", "load_model", "models",
           "__version__"]
