"""Training: the loop that runs the parts (radius → attack → objective → weighting → step), schedules,
callbacks and resume. Checkpoint input/output lives one layer down, in `irat.checkpoints`."""

from ..checkpoints import load_checkpoint, load_model, run_state, save_checkpoint
from .trainer import Trainer

__all__ = ["Trainer", "load_checkpoint", "load_model", "run_state", "save_checkpoint"]
