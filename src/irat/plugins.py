"""Plug-ins: Python files or modules that register parts (weighting schemes, objectives, radii,
evaluation attacks, models) when imported.

    irat train --plugin path/to/my_scheme.py --weighting my-scheme --set weighting.my-scheme.KEY=VALUE ...
    irat eval RUN --plugin my_package.attacks --attacks my-attack

An installed package registers itself through the entry-point group `irat.plugins` (the entry point
names a module, or a function that is called). A run records the plug-ins it was trained with
(`plugins` in config.yaml). Loading never imports code that the user did not name: resume, `irat eval`,
`irat.load_model` and `irat train --preset FILE` use a recorded plug-in only when the same plug-in is named
on this command line (`--plugin`; `plugins=` in Python), or when the user trusts recorded plug-ins
explicitly (`IRAT_TRUST_PLUGINS=1`); otherwise one message lists what the run needs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from .errors import ConfigError

ENTRY_POINT_GROUP = "irat.plugins"
_LOADED: dict[str, ModuleType] = {}
_entry_points_loaded = False


def resolve(spec: str) -> str:
    """A plug-in as the run records it: an existing file as its absolute path, else a module name."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.suffix == ".py" or path.is_file() else spec


def load_plugin(spec: str) -> ModuleType:
    """Import a plug-in file (`.py`) or module once; its import registers its parts."""
    key = resolve(spec)
    if key in _LOADED:
        return _LOADED[key]
    path = Path(key)
    try:
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise ConfigError(f"plug-in {spec}: no such file")
            name = f"irat_plugin_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"plug-in {spec}: not a Python file")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            module = importlib.import_module(spec)
    except ConfigError:
        raise
    except ImportError as exc:
        raise ConfigError(
            f"plug-in {spec}: cannot be imported ({exc}); pass a .py file or an importable module"
        ) from exc
    except Exception as exc:
        raise ConfigError(f"plug-in {spec} failed while loading: {type(exc).__name__}: {exc}") from exc
    _LOADED[key] = module
    return module


def load_entry_points() -> None:
    """Load every installed package's `irat.plugins` entry points (once per process)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"installed plug-in {ep.name} ({ep.value}) failed while loading: {exc}") from exc
        if callable(obj) and not isinstance(obj, ModuleType):
            obj()


def load_plugins(specs: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Load the installed entry points and the given plug-ins; returns them as a run records them."""
    load_entry_points()
    for spec in specs:
        load_plugin(spec)
    return [resolve(s) for s in specs]


TRUST_ENV = "IRAT_TRUST_PLUGINS"


def trusted() -> bool:
    """Whether the user trusts the plug-ins recorded in runs and presets (IRAT_TRUST_PLUGINS=1)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def missing(specs: list[str] | tuple[str, ...]) -> list[str]:
    """The recorded plug-ins not loaded in this process (not named by the user)."""
    return [s for s in specs if resolve(s) not in _LOADED and s not in _LOADED]


def require_recorded(specs: list[str] | tuple[str, ...], what: str) -> None:
    """Make sure the plug-ins a run or preset records are loaded — only those the user named (or all, when
    trusted); any other is refused with one message before it is imported."""
    load_entry_points()
    todo = missing(specs)
    if not todo:
        return
    if trusted():
        load_plugins(todo)
        return
    raise ConfigError(
        f"{what} was made with the plug-in{'s' if len(todo) > 1 else ''} {', '.join(todo)}; irat imports no code "
        f"you did not name: add {' '.join(f'--plugin {t}' for t in todo)} (Python: plugins=[...]) if you trust "
        f"{'them' if len(todo) > 1 else 'it'}, or set {TRUST_ENV}=1 to trust the plug-ins runs and presets record"
    )
