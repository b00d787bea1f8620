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
        self._aliases: dict[str, str] = {}  # other names of an entry (`wrn-34-10` for `wrn34`, …)
        self._docs: dict[str, str] = {}  # one line each, for listings

    def register(
        self, name: str, *, replace: bool = False, aliases: tuple[str, ...] = (), doc: str = ""
    ) -> Callable[[T], T]:
        """Decorator: register an entry under `name` (and `aliases`) with a one-line description (default: its
        docstring's first line). A name or alias already taken — a built-in's or another plug-in's — is
        refused unless replace=True."""

        def add(item: T) -> T:
            for key in (name, *aliases):
                taken = self.resolve(key)
                if taken is not None and not replace and self._items[taken] is not item:
                    raise ConfigError(
                        f"a {self.kind} named {key!r} is already registered"
                        + (f" ({taken})" if taken != key else "")
                        + "; choose another name or pass replace=True"
                    )
            self._items[name] = item
            self._docs[name] = doc or ((getattr(item, "__doc__", None) or "").strip().splitlines() or [""])[0]
            for a in aliases:
                self._aliases[a] = name
            if isinstance(item, type):
                setattr(item, "name", name)  # noqa: B010  # a part class knows its registered name
            return item

        return add

    def resolve(self, name: str) -> str | None:
        """The registered name `name` (or an alias, in any case, `_` for `-`) stands for, or None."""
        key = name.lower().replace("_", "-")
        key = self._aliases.get(key, key)
        return next((n for n in self._items if n.replace("_", "-") == key.replace("_", "-")), None)

    def describe(self) -> dict[str, str]:
        """{name: one-line description}, sorted by name."""
        return dict(sorted(self._docs.items()))

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(
                f"unknown {self.kind} {name!r} for {self.key}; known: {', '.join(self._items)} "
                f"(a plug-in's {self.kind} is known once loaded: --plugin FILE.py)"
            )
        return self._items[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def values(self) -> list[T]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
