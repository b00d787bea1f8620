"""YAML presets shipped with irat (`src/irat/presets/**.yaml`) or given as a path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import load_yaml
from .errors import ConfigError

PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(str(p.relative_to(PRESET_DIR).with_suffix("")) for p in PRESET_DIR.rglob("*.yaml"))


def load_preset(name: str) -> dict:
    """A shipped preset by name (e.g. `bilaw/mnist-tinycnn-linf/at`) or a YAML file path."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        data = load_yaml(path)
    else:
        p = PRESET_DIR / f"{name}.yaml"
        if not p.is_file():
            raise ConfigError(f"unknown preset {name!r}; see `irat methods` for the list, or pass a YAML file path")
        data = load_yaml(p)
    for key in ("source", "description", "paper"):  # about the preset, not settings
        data.pop(key, None)
    return data


def paper_numbers(name: str) -> dict | None:
    """What the paper reports for this preset's row (`paper:` in its YAML): table, columns, mean ± std."""
    path = PRESET_DIR / f"{name}.yaml"
    return load_yaml(path).get("paper") if path.is_file() else None


def preset_config(name: str | None, method: str | None = None):
    """A Config from defaults < method < preset: the method named (else the preset's, else at), then
    the preset's fields. The one place a preset becomes a configuration (CLI and benchmarks)."""
    from .config import Config, apply_dict
    from .methods import apply_method

    preset = load_preset(name) if name else {}
    cfg = Config()
    apply_method(cfg, method or preset.get("method", "at"))
    preset.pop("method", None)
    apply_dict(cfg, preset)
    cfg.preset = name if name and not Path(name).suffix else cfg.preset  # shipped presets are recorded by name
    return cfg


def preset_info(name: str) -> dict:
    data = load_yaml(PRESET_DIR / f"{name}.yaml")
    return {
        "name": name,
        "source": data.get("source", ""),
        "description": data.get("description", ""),
        "method": data.get("method", ""),
    }


def build_config(preset: str | None, method: str | None, settings: list[tuple[str, Any]], plugins: Sequence[str] = ()):
    """The command line's and `irat.fit`'s configuration: defaults < method < preset < settings (dotted keys, in
    order), with the plug-ins it needs recorded; settings that change the method's parts name the run after them
    (`at+mail`)."""
    from .config import set_key
    from .methods import parts_of
    from .plugins import load_plugins

    specs = load_plugins(list(plugins))
    cfg = preset_config(preset, method)
    chosen = parts_of(cfg)
    for key, value in settings:
        set_key(cfg, key, value, say_renamed=True)
    cfg.plugins = list(dict.fromkeys([*cfg.plugins, *specs]))
    if parts_of(cfg) != chosen:
        cfg.method = "+".join(p for p in parts_of(cfg) if p)
    return cfg
