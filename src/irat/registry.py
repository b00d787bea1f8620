"""A registry of named parts (in the spirit of timm's `@register_model`): one per kind of part.

    @WEIGHTINGS.register("my-scheme")
    class MyScheme(Weighting): ...

A name resolves to its class; an unknown name stops with one message listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one kind (objective, weighting, radius, attack)."""

    def __init__(self, kind: str, key: str):
        self.kind = kind  # "weighting scheme", for messages
        self.key = key  # the config key that names one, e.g. "weighting.name"
        self._items: dict[str, T] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator: register a class under `name` (a second registration needs replace=True)."""

        def add(item: T) -> T:
            if name in self._items and not replace and self._items[name] is not item:
                raise ConfigError(
                    f"a {self.kind} named {name!r} is already registered; choose another name or pass replace=True"
                )
            self._items[name] = item
            if isinstance(item, type):
                setattr(item, "name", name)  # noqa: B010  # a part class knows its registered name
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(
                f"unknown {self.kind} {name!r} for {self.key}; known: {', '.join(self._items)} "
                f"(a plug-in's {self.kind} is known once loaded: --plugin FILE.py)"
            )
        return self._items[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
