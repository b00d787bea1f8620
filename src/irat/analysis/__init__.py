"""Reports (tables across seeds) and analysis figures from run directories."""

from .report import build_report, by_class, render

__all__ = ["build_report", "by_class", "render"]
