"""Flat, frozen dataclass configs as CLI flags: one ``--flag-name`` per field, help from the field.

Options flow CLI -> config -> code with nothing in between. Each field's ``help`` metadata is its
flag's help text; ``flag`` metadata overrides the flag name.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from dataclasses import field


def flag_field(default, help: str, **meta):
    """A dataclass field whose ``help`` becomes its CLI flag's help text (see :func:`add_flags`)."""
    return field(default=default, metadata={"help": help, **meta})


def _flag_type(tp):
    """``int | None`` -> ``int``; ``Literal["a", "b"] | None`` -> the Literal; ``tuple[str, ...]`` -> ``tuple``."""
    if isinstance(tp, str):  # a raw annotation string (prefer typing.get_type_hints(cls) to resolve aliases)
        tp = eval(tp, {"types": types, **vars(typing)})
    if typing.get_origin(tp) is typing.Literal:
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is tuple:
        return tuple
    return _flag_type(args[0]) if args and typing.get_origin(tp) in (typing.Union, types.UnionType) else tp


class ChoiceError(argparse.ArgumentTypeError, ValueError):
    """A value outside a Literal field's choices (argparse shows it as a usage error)."""


def choice(values: tuple[str, ...], flag: str):
    """An argparse type accepting one of ``values``; a wrong value's error lists them, with a "did you mean"."""

    def parse(text: str) -> str:
        if text in values:
            return text
        hint = difflib.get_close_matches(text, values, n=1)
        raise ChoiceError(f"{flag}: unknown value {text!r}" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (valid: {', '.join(values)})")

    parse.__name__ = flag  # argparse names the type in its own messages
    return parse


def split_list(s: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(x.strip() for x in s.split(",") if x.strip())


def _default_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return str(value)


def add_flags(parser, cls, group_of=None) -> None:
    """One ``--flag-name`` per dataclass field of ``cls`` on ``parser`` (a parser or an argument group).

    A bool that defaults to False is a store_true switch (``--no-cache``); one that defaults to
    True gets ``--flag`` / ``--no-flag``. A ``Literal`` field accepts only its values; a
    ``tuple[str, ...]`` field takes a comma-separated list. Each help text ends with the default.
    ``group_of(field)``, if given, picks the argument group each flag goes in (default: ``parser``).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        name = "--" + f.metadata.get("flag", f.name.replace("_", "-"))
        target = group_of(f) if group_of else parser
        tp = _flag_type(hints[f.name])
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if tp is bool:
            action = argparse.BooleanOptionalAction if default else "store_true"
            target.add_argument(name, dest=f.name, action=action, default=default, help=text + (" (default: on)" if default else ""))
            continue
        if typing.get_origin(tp) is typing.Literal:
            values = typing.get_args(tp)
            kw = dict(type=choice(values, name), metavar="{" + ",".join(values) + "}")
        elif tp is tuple:
            kw = dict(type=split_list, metavar="A,B,...")
        else:
            kw = dict(type=tp)
        target.add_argument(name, dest=f.name, default=default, help=text + f" (default: {_default_text(default)})".replace("%", "%%"), **kw)


def check_fields(obj) -> None:
    """Validate a config built in code as the CLI would: a ``Literal`` field holds one of its values
    (the error lists them, with a "did you mean"), a ``tuple`` field holds a tuple of strings."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), _flag_type(hints[f.name])
        if typing.get_origin(tp) is typing.Literal and value is not None:
            values = typing.get_args(tp)
            if value not in values:
                choice(values, "--" + f.name.replace("_", "-"))(value)  # raises with the valid values
        elif tp is tuple and not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{type(obj).__name__}.{f.name} must be a tuple of strings, got {value!r}")


def from_args(ns: argparse.Namespace, cls):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})
