"""Checks on one config field each, for the configs' `__post_init__`: a bad value raises `ConfigError` with a
one-line message that names the config class, the field, what it must be and what it got.

    def __post_init__(self):
        config_checks.integers(self, dim=1, heads=1, layers=0)      # integers >= the given lower bound
        config_checks.fraction(self, "dropout")                     # a finite number in [0, 1)
        config_checks.choice(self, "compute_dtype", ("float32", "bfloat16"))

Integers refuse bools and floats (`dim=32.5` is not a width); numbers refuse bools, NaN and infinities. A config
built from `--set key=value` overrides (`overrides.py`) or from a checkpoint's config.json goes through the same
checks, so a bad value stops the run before any data loads or any step compiles.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from mmspeech_jax.errors import ConfigError


def _fail(config, name: str, must: str, value: Any):
    raise ConfigError(f"{type(config).__name__}.{name} must be {must}, got {value!r}")


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _bounds(low, high, low_open: bool = False, high_open: bool = False) -> str:
    """' >= 0 and < 1' for the message; '' without bounds."""
    parts = ([f"{'>' if low_open else '>='} {low}"] if low is not None else []) + (
        [f"{'<' if high_open else '<='} {high}"] if high is not None else [])
    return (" " + " and ".join(parts)) if parts else ""


def integer(config, name: str, low: int | None = None, high: int | None = None, *, none_ok: bool = False) -> None:
    """`config.name` is an integer in [low, high] (either bound may be None), or None when `none_ok`."""
    value = getattr(config, name)
    if value is None and none_ok:
        return
    if not _is_integer(value) or (low is not None and value < low) or (high is not None and value > high):
        _fail(config, name, ("None or " if none_ok else "") + "an integer" + _bounds(low, high), value)


def integers(config, **lows: int) -> None:
    """Each named field an integer >= its lower bound: `integers(self, dim=1, layers=0)`."""
    for name, low in lows.items():
        integer(config, name, low)


def number(config, name: str, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, none_ok: bool = False) -> None:
    """`config.name` is a finite real number between the bounds (closed unless `*_open`), or None when `none_ok`."""
    value = getattr(config, name)
    if value is None and none_ok:
        return
    ok = _is_number(value) and (low is None or (value > low if low_open else value >= low)) and (
        high is None or (value < high if high_open else value <= high))
    if not ok:
        _fail(config, name, ("None or " if none_ok else "") + "a finite number"
              + _bounds(low, high, low_open, high_open), value)


def positive(config, *names: str) -> None:
    """Each named field a finite number > 0 (a rate, a scale, a temperature)."""
    for name in names:
        number(config, name, 0, low_open=True)


def fraction(config, *names: str, none_ok: bool = False) -> None:
    """Each named field a dropout-like rate: a finite number in [0, 1) (1 would drop everything)."""
    for name in names:
        number(config, name, 0, 1, high_open=True, none_ok=none_ok)


def choice(config, name: str, options: Sequence[Any]) -> None:
    """`config.name` is one of `options`."""
    value = getattr(config, name)
    if value not in tuple(options):
        _fail(config, name, "one of " + ", ".join(repr(o) for o in options), value)


def flag(config, *names: str) -> None:
    """Each named field a bool (a JSON `true`/`false` from `--set`, not the string "yes")."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, bool):
            _fail(config, name, "true or false", value)


def divisible(config, name: str, by: str) -> None:
    """`config.name` is a multiple of `config.by` (both already checked as positive integers)."""
    value, divisor = getattr(config, name), getattr(config, by)
    if value % divisor:
        raise ConfigError(f"{type(config).__name__}.{name}={value} is not divisible by {by}={divisor}")
