"""Command-line options made from a settings dataclass, so a setting is defined once.

    p = argparse.ArgumentParser()
    add_options(p, TrainSettings, required=("out",))
    settings = from_options(TrainSettings, p.parse_args())

Each field becomes ``--field-name``; its help is the comment after the field in the class body
(``minutes: float = 30.0  # wall-clock budget``) and its default is the field's. Types: int,
float, str, bool (``--flag`` / ``--no-flag``), ``list[str]`` (comma-separated) and ``dict``
(``FIELD=VALUE`` items, VALUE in JSON: ``--agent-overrides image_size=32 amp='"bf16"'``). No
third-party parser: argparse with the dataclass as the one source of truth (tyro would do the
same and more, at the price of a dependency for a dozen flat fields).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
import shlex
import typing
from typing import Any, Iterable

__all__ = ["add_options", "from_options", "to_options", "field_comments", "item_text", "parse_items"]

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """field name -> the comment on its line in the class body ('' where there is none)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for line in source.splitlines():
        m = _FIELD_LINE.match(line)
        if m and m.group(1) in names and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def parse_items(items: Iterable[str], what: str = "option") -> dict[str, Any]:
    """``["image_size=32", "unet_filters=[8, 8]"]`` -> ``{"image_size": 32, "unet_filters": [8, 8]}``
    (values are JSON; anything that is not stays a string). ValueError names a bad item."""
    out = {}
    for item in items:
        name, sep, text = str(item).partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{what}: {item!r} is not FIELD=VALUE")
        try:
            out[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[name.strip()] = text.strip()
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _comma_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def add_options(parser: argparse.ArgumentParser, cls: type, skip: Iterable[str] = (),
                required: Iterable[str] = (), aliases: dict[str, str] | None = None) -> None:
    """One option per field of dataclass ``cls`` (except ``skip``); ``required`` ones have no
    default; ``aliases`` gives a field a second flag (``{"method": "--algo"}``)."""
    aliases = aliases or {}
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    required, skip = set(required), set(skip)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        origin = typing.get_origin(kind) or kind
        default = _default(f)
        help_text = comments.get(f.name, "")
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text}
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
            shown = ",".join(default) if isinstance(default, list) else default
            kwargs["help"] = f"{help_text} (default: {shown!s})" if help_text else f"default: {shown!s}"
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is dict:
            kwargs.update(nargs="*", metavar="FIELD=VALUE")
        elif origin is list:
            kwargs.update(type=_comma_list, metavar="A,B,...")
        elif kind in (int, float, str):
            kwargs["type"] = kind
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {kind!r}")
        parser.add_argument(flag, *([aliases[f.name]] if f.name in aliases else []), **kwargs)


def from_options(cls: type, args: argparse.Namespace, **changes: Any):
    """An instance of ``cls`` from the parsed options (a dict field's FIELD=VALUE items parsed),
    with ``changes`` on top."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if not hasattr(args, f.name):
            continue
        value = getattr(args, f.name)
        if (typing.get_origin(hints[f.name]) or hints[f.name]) is dict and not isinstance(value, dict):
            value = parse_items(value or [], "--" + f.name.replace("_", "-"))
        values[f.name] = value
    values.update(changes)
    return cls(**values)


def item_text(value: Any) -> str:
    """A dict field's VALUE as :func:`parse_items` parses it back: JSON, or a bare string where
    the string is not itself JSON (``amp=off``, not ``amp='"off"'``)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except json.JSONDecodeError:
            return value
    return json.dumps(value, separators=(",", ":"))


def to_options(cls: type, values: dict[str, Any], always: Iterable[str] = ()) -> str:
    """The options that make ``cls(**values)`` again (:func:`add_options`' flags, in field
    order, shell-quoted): the fields that differ from their defaults, and ``always``. Keys that
    are not fields of ``cls`` (a setting since removed) are left out."""
    always = set(always)
    words: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, flag = values[f.name], "--" + f.name.replace("_", "-")
        if value == _default(f) and f.name not in always:
            continue
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, dict):
            if value:
                words += [flag] + [shlex.quote(f"{k}={item_text(v)}") for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            words += [flag, shlex.quote(",".join(map(str, value)))]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)
