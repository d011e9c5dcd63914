"""The one CLI layer's parsing: ``file.py:ARG`` arguments, ``--config.KEY=VALUE`` values, argparse.

``configs/x.py:quick,seed=3`` (STYLE 2.2): the part after the colon is a comma-separated list of
``name`` (boolean flag set to True) or ``name=value`` items, typed by the defaults given to
:func:`parse_arg`. ``--config.a.b=value`` overrides are typed by the field's current value. Both go
through :func:`parse_value`, so they accept the same spellings (``on``/``off`` included) and
refuse the same bad input with one-line :class:`UsageError` messages. :class:`ArgumentParser` is
the one argparse parser of ``jaxlab`` and its tool subcommands.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import math

import ml_collections

# Python refuses int <-> str conversions past this many digits (sys.get_int_max_str_digits()).
MAX_INT_DIGITS = 4300
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class UsageError(ValueError):
    """Bad command-line input. The CLI prints ``jaxlab: error: <message>`` (one line) and exits 2.

    Tool subcommands (``jaxlab tokenizer ...``, ``jaxlab abc ...``) raise it for bad arguments,
    missing or unreadable files, and values out of range.
    """


class WriteError(UsageError):
    """The environment refused a write the run needed (disk full, file-size limit, I/O error).

    Printed on one line like a :class:`UsageError`, but the CLI exits 1: the command was fine.
    """


class ConfigArgError(UsageError):
    """Raised for a malformed or unknown config argument."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting.

    Sub-programs (``prog`` other than ``jaxlab``, e.g. ``jaxlab tokenizer encode``) prefix the
    message with their name so the one error line says where it came from.
    """

    def error(self, message: str):
        where = self.prog.removeprefix("jaxlab").strip()
        raise UsageError(f"{where}: {message}" if where else message)


def shorten(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut to about ``limit`` characters (error lines stay one short line)."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 5]}...' ({len(text)} characters)"


def parse_value(text: str, current, *, name: str):
    """Parses ``text`` into the type of ``current`` (the field's default or present value).

    bool: ``1/true/yes/on`` or ``0/false/no/off`` (any case); int: decimal with at most
    :data:`MAX_INT_DIGITS` digits (``_`` separators allowed); float: finite numbers only; str:
    as is; tuple/list (and None): a Python literal, a list field keeps its type and refuses a
    scalar, except that a tuple of strings (e.g. file names) takes one bare string as ``(text,)``.

    Args:
      text: The value as typed.
      current: A value of the expected type.
      name: How the error names the setting, e.g. ``"--config.train.num_steps"``.

    Raises:
      ConfigArgError: one line naming ``name``, what was expected and (shortened) what was given.

    Examples:
      >>> parse_value("off", True, name="x"), parse_value("1_000", 0, name="x")
      (False, 1000)
    """
    text = text.strip()
    if isinstance(current, bool):
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ConfigArgError(
            f"{name}: expected true/false (or on/off, yes/no, 1/0), got {shorten(text)}"
        )
    if isinstance(current, int):
        digits = text.lstrip("+-").replace("_", "")
        if len(digits) > MAX_INT_DIGITS:
            raise ConfigArgError(
                f"{name}: integer has {len(digits)} digits (at most {MAX_INT_DIGITS})"
            )
        try:
            return int(text)
        except ValueError:
            raise ConfigArgError(f"{name}: expected an integer, got {shorten(text)}") from None
    if isinstance(current, float):
        try:
            value = float(text)
        except ValueError:
            raise ConfigArgError(f"{name}: expected a number, got {shorten(text)}") from None
        if not math.isfinite(value):
            raise ConfigArgError(f"{name}: expected a finite number, got {shorten(text)}")
        return value
    if isinstance(current, str):
        return text
    if len(text) > 100_000:
        raise ConfigArgError(f"{name}: value is {len(text)} characters long (at most 100000)")
    strings = isinstance(current, tuple | list) and all(isinstance(v, str) for v in current)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        if current is None:
            return text
        if strings:  # a tuple of strings (file names) given one bare string
            return type(current)((text,))
        kind = type(current).__name__
        raise ConfigArgError(f"{name}: expected a {kind} literal, got {shorten(text)}") from None
    if current is not None and not isinstance(value, type(current)):
        if isinstance(current, tuple | list) and isinstance(value, tuple | list):
            return type(current)(value)
        if strings and isinstance(value, str):
            return type(current)((value,))
        kind = type(current).__name__
        raise ConfigArgError(f"{name}: expected a {kind}, got {shorten(text)}")
    return value


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses ``"quick,seed=3"`` into a ConfigDict typed by ``defaults``.

    Args:
      arg: The text after ``:`` in ``file.py:ARG``, or None/empty for all defaults.
      **defaults: Every accepted name with its default; the default's type fixes the parse.

    Returns:
      A ConfigDict with one field per default.

    Raises:
      ConfigArgError: on an unknown name or a value of the wrong type.

    Examples:
      >>> parse_arg("quick,seed=3", quick=False, seed=0).seed
      3
    """
    out = dict(defaults)
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigArgError(f"unknown config argument {name!r} (known: {known})")
        if not sep:
            if not isinstance(defaults[name], bool):
                raise ConfigArgError(f"config argument {name!r} needs a value: {name}=...")
            out[name] = True
        else:
            out[name] = parse_value(value, defaults[name], name=f"config argument {name!r}")
    return ml_collections.ConfigDict(out)


def to_dataclass(cls, section, **extra):
    """Builds the frozen dataclass ``cls`` from a config section (STYLE 2.2).

    The one conversion from a ConfigDict to the library's typed options: runners call it instead
    of defining mirror dataclasses. Lists become tuples (so the result stays hashable and usable
    as a static jit argument); keys of ``section`` that ``cls`` does not have are an error, fields
    missing from ``section`` take the dataclass defaults. ``extra`` overrides or adds fields.

    Args:
      cls: A dataclass type.
      section: A ConfigDict, a mapping, or None.
      **extra: Field values that take precedence over ``section``.

    Returns:
      ``cls(**fields)``.

    Raises:
      ConfigArgError: a key that is not a field of ``cls``, or a required field that is missing.

    Examples:
      >>> import dataclasses
      >>> @dataclasses.dataclass(frozen=True)
      ... class Opts:
      ...     widths: tuple = (1,)
      ...     lr: float = 1e-3
      >>> to_dataclass(Opts, {"widths": [4, 8]})
      Opts(widths=(4, 8), lr=0.001)
    """
    items = dict(section.to_dict() if hasattr(section, "to_dict") else (section or {}))
    items.update(extra)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(items) - set(fields))
    if unknown:
        raise ConfigArgError(
            f"{cls.__name__} has no field(s) {', '.join(unknown)} (fields: {', '.join(fields)})"
        )

    def freeze(value):
        if isinstance(value, list | tuple):
            return tuple(freeze(v) for v in value)
        return value

    try:
        return cls(**{k: freeze(v) for k, v in items.items()})
    except TypeError as e:  # a required field without a value
        raise ConfigArgError(f"{cls.__name__}: {e}") from None
