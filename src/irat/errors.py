"""User-facing errors: one clear message, no traceback, raised before any work starts."""

from __future__ import annotations


class IratError(Exception):
    """A problem with the user's input or files; the CLI prints the message and exits with 2."""


class DataError(IratError):
    """A dataset file is missing, corrupt, or cannot be downloaded."""


class CheckpointError(IratError):
    """A checkpoint is missing, corrupt, of a foreign format, or of an unsupported version."""


class ConfigError(IratError):
    """An unknown method, dataset, model or option, or a value out of range."""
