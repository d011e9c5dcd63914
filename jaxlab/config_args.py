"""Parsing of config-file arguments: ``configs/x.py:quick,seed=3`` (STYLE 2.2).

The part after the colon is a comma-separated list of ``name`` (boolean flag set to True) or
``name=value`` items. Values are typed by the default given to :func:`parse_arg`.
"""

from __future__ import annotations

import ml_collections


class UsageError(ValueError):
    """Bad command-line input. The CLI prints ``jaxlab: error: <message>`` (one line) and exits 2.

    Tool subcommands (``jaxlab tokenizer ...``, ``jaxlab abc ...``) raise it for bad arguments,
    missing or unreadable files, and values out of range.
    """


class ConfigArgError(UsageError):
    """Raised for a malformed or unknown config argument."""


def _convert(name: str, text: str, default):
    if isinstance(default, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigArgError(f"config argument {name!r}: expected a boolean, got {text!r}")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigArgError(
                f"config argument {name!r}: expected an integer, got {text!r}"
            ) from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise ConfigArgError(
                f"config argument {name!r}: expected a number, got {text!r}"
            ) from None
    return text


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
            out[name] = _convert(name, value.strip(), defaults[name])
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
    import dataclasses

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
