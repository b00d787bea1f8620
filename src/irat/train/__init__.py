"""Training: the trainer loop, schedules, checkpoints and resume."""
from .checkpoint import load_checkpoint, save_checkpoint
from .trainer import Trainer, load_model, run_state

__all__ = ["Trainer", "load_checkpoint", "load_model", "run_state", "save_checkpoint"]
