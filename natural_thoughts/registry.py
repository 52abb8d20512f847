"""One registry per kind of plugin, and one spec format for all of them.

A spec is a name (`"Long"`) or a one-key mapping of a name to its parameters (`{"Long": {"C": 4000}}`),
as written in YAML or passed from Python; a ready instance is passed through unchanged. Selectors,
annotators, backends, executors, loader presets and export formats each have a `Registry`; third
parties add to one through the entry-point group `natural_thoughts.<kind>s` (e.g.
`natural_thoughts.selectors`), without touching this package.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Spec = str | dict[str, Any]
"""`"Name"` or `{"Name": {params}}` (a `{"name": "Name", **params}` mapping is read too)."""


def yaml_keys(value: Any) -> Any:
    """`value` with YAML 1.1's `True` keys turned back into `on`, at every nesting level.

    PyYAML's `safe_load` reads a bare `on:` key as the boolean, so `{Long: {on: reasoning}}` would
    otherwise arrive as `{Long: {True: reasoning}}`.
    """
    if isinstance(value, dict):
        return {("on" if k is True else k): yaml_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_keys(v) for v in value]
    return value


def parse_spec(spec: Spec, kind: str = "plugin") -> tuple[str, dict[str, Any]]:
    """(name, params) of a spec; an unreadable spec is refused, saying what a spec looks like."""
    spec = yaml_keys(spec)
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return spec["name"], {k: v for k, v in spec.items() if k != "name"}
    if isinstance(spec, dict) and len(spec) == 1:
        name, params = next(iter(spec.items()))
        if isinstance(name, str) and isinstance(params, (dict, type(None))):
            return name, dict(params or {})
    raise ValueError(f"cannot read a {kind} from {spec!r}: give a name, or {{name: {{parameters}}}}")


class Registry(Generic[T]):
    """Named plugins of one kind: built-ins registered here, third parties through entry points."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.group = f"natural_thoughts.{kind}s"
        self._items: dict[str, T] = {}

    def register(self, obj: T | None = None, *, name: str | None = None) -> Any:
        """Register `obj` under `name` (default: its `__name__`); usable as a decorator, with or
        without `name=`. Registering another object under a taken name is refused."""

        def add(item: T) -> T:
            key = name or getattr(item, "__name__", None)
            if not key:
                raise ValueError(f"a {self.kind} registered without a name needs one: register(obj, name=...)")
            if key in self._items and self._items[key] is not item:
                raise ValueError(f"{self.kind} {key!r} is registered already ({self._items[key]!r})")
            self._items[key] = item
            return item

        return add if obj is None else add(obj)

    def available(self) -> dict[str, T]:
        """Every known entry: the built-ins, then those installed under the entry-point group."""
        found = dict(self._items)
        for ep in entry_points(group=self.group):
            found.setdefault(ep.name, ep.load())
        return found

    def names(self) -> list[str]:
        return sorted(self.available())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self.available())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """The entry called `name`, or an error that lists the known ones (and the closest)."""
        if name in self._items:
            return self._items[name]
        known = self.available()
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {self.kind} {name!r}{hint}; known {self.kind}s: {sorted(known)}")
        return known[name]

    def build(self, spec: Spec | Any, **extra: Any) -> Any:
        """An instance from a spec (`extra` adds parameters); an instance that is not a spec is
        returned as it is."""
        if not isinstance(spec, (str, dict)):
            return spec
        name, params = parse_spec(spec, self.kind)
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        return factory(**params, **extra)
