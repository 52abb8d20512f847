"""One registry per kind of plugin, and one spec format for all of them.

A spec is a name (`"Long"`) or a one-key mapping of a name to its parameters (`{"Long": {"C": 4000}}`),
as written in YAML or passed from Python; a ready instance is passed through unchanged. Selectors,
annotators, backends, executors, loader presets and export formats each have a `Registry`; third
parties add to one through the entry-point group `natural_thoughts.<kind>s` (e.g.
`natural_thoughts.selectors`), without touching this package.
"""

from __future__ import annotations

import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

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


_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
"""A number written as text: YAML 1.1 reads `1e4` (no dot) as a string, and `"2.5"` is one."""
_WORDS: dict[Any, str] = {float: "a number", int: "a whole number", str: "a string", bool: "true or false",
                          type(None): "null"}


def checked_params(factory: Callable[..., Any], params: dict[str, Any], name: str) -> dict[str, Any]:
    """`params` checked against `factory`'s signature and type hints before it is called, so a
    config fails when it is read, in one line naming `name` and the parameter.

    An unknown parameter is refused with the closest known one ("did you mean"). A value must fit
    the hint: a number where a number is asked (a number written as text, `"2.5"` or YAML's `1e4`,
    is read as that number; an integral float as a whole number), a string, true/false, null, one
    of a `Literal`'s values, a list or a mapping; other hints are left to the factory."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check against
        return dict(params)
    named = [p.name for p in signature.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except Exception:  # a hint that names what its module cannot import: check the names only
        hints = {}
    out = {}
    for key, value in params.items():
        if key not in named and not takes_any:
            close = difflib.get_close_matches(str(key), named, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{name}: unknown parameter {key!r}{hint}; its parameters: {', '.join(named)}")
        out[key] = _fit(value, hints.get(key, Any), f"{name}: {key}")
    return out


def _fit(value: Any, hint: Any, what: str) -> Any:
    """`value` as `hint` asks (see `checked_params`), or a ValueError naming `what`."""
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):  # where a number is asked, "1e4" is one
        for option in (o for o in options if o in (int, float)):
            fits, fitted = _fits(value, option, True)
            if fits:
                return fitted
    for coerce in (False, True):  # a value that fits as it is wins over a converted one
        for option in options:
            fits, fitted = _fits(value, option, coerce)
            if fits:
                return fitted
    words = " or ".join(dict.fromkeys(_describe(o) for o in options))
    raise ValueError(f"{what} must be {words}, got {value!r}")


def _fits(value: Any, option: Any, coerce: bool) -> tuple[bool, Any]:
    """Whether `value` fits one type `option` (converted when `coerce`), and the value to use."""
    origin = get_origin(option) or option
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    text_number = coerce and isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None
    if origin is Literal:
        return value in get_args(option), value
    if option is float:
        return (True, value) if number else (True, float(value)) if text_number else (False, value)
    if option is int:
        whole = value if number else float(value) if text_number else None
        if whole is None or not float(whole).is_integer() or (isinstance(whole, float) and not coerce):
            return False, value
        return True, int(whole)
    if option in (str, bool, type(None)):
        return isinstance(value, option), value
    if origin in (list, tuple, Sequence):
        return isinstance(value, (list, tuple)), value
    if origin in (dict, Mapping):
        return isinstance(value, dict), value
    return True, value  # a class or a hint this check does not read: the factory decides


def _describe(option: Any) -> str:
    """A type in words for an error message."""
    origin = get_origin(option) or option
    if origin is Literal:
        return f"one of {list(get_args(option))}"
    if origin in (list, tuple, Sequence):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    return _WORDS.get(option, getattr(option, "__name__", str(option)))


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
        return factory(**checked_params(factory, params, name), **extra)
