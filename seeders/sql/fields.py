"""The identity fields a mapping may name, and how to read them.

A field path is an attribute path of ``canary.model.Identity``: ``last_name``,
``address.postcode``, ``gp.rpps``, a computed property such as ``first_name``,
a list field such as ``first_names`` (joined or indexed by the mapping), or
``extra.KEY`` for generator-specific extras. The catalogue is derived from the
dataclasses themselves, so a field added to the model is usable at once.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from datetime import date, datetime
from typing import Any

from canary.model import Identity

# Kinds a field value can have; the mapping uses them to check its column specs.
TEXT, DATE, DATETIME, LIST, BOOL, INT, ANY = "text", "date", "datetime", "list", "bool", "int", "any"


def _kind_of(hint: Any) -> str | type:
    """A kind for a type hint, or the dataclass to descend into."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _kind_of(args[0]) if len(args) == 1 else ANY
    if origin in (tuple, list):
        return LIST
    if origin is dict or hint is dict:
        return ANY
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return hint
        if issubclass(hint, bool):
            return BOOL
        if issubclass(hint, int) and not issubclass(hint, enum.Enum):
            return INT
        if issubclass(hint, datetime):
            return DATETIME
        if issubclass(hint, date):
            return DATE
        if issubclass(hint, (str, enum.Enum)):
            return TEXT
    return ANY


def _walk(cls: type, prefix: str, out: dict[str, str]) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _kind_of(hints[f.name])
        if isinstance(kind, type):
            _walk(kind, prefix + f.name + ".", out)
        elif f.name != "extra":  # a dict: only its keys are fields ("extra.KEY")
            out[prefix + f.name] = kind
    for name, member in vars(cls).items():
        if isinstance(member, property) and member.fget is not None:
            ret = typing.get_type_hints(member.fget).get("return", Any)
            kind = _kind_of(ret)
            out[prefix + name] = kind if isinstance(kind, str) else ANY


@functools.cache
def catalogue() -> dict[str, str]:
    """Every field path of Identity with its kind (built on first use)."""
    out: dict[str, str] = {}
    _walk(Identity, "", out)
    return out


def field_kind(path: str) -> str | None:
    """The kind of a field path, or None if Identity has no such field."""
    if path.startswith("extra.") and len(path) > len("extra."):
        return ANY
    return catalogue().get(path)


def resolve(identity: Identity, path: str) -> Any:
    """The value at ``path`` (a path accepted by ``field_kind``); enums give their value."""
    if path.startswith("extra."):
        return identity.extra.get(path[len("extra."):])
    value: Any = identity
    for part in path.split("."):
        value = getattr(value, part)
    if isinstance(value, enum.Enum):
        return value.value
    return value
