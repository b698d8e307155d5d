"""Typed config trees: frozen dataclasses nested into one tree per experiment, written to JSON and read back into the
same types.

    tree = TTSExperimentConfig(model=preset("base", 80), ...)
    record = to_dict(tree)                       # plain dicts and lists: json.dumps(record)
    assert from_dict(TTSExperimentConfig, json.loads(json.dumps(record))) == tree

`from_dict` walks the dataclass's resolved type hints: a field typed as a config dataclass (or `X | None`) is built
from its dict, a tuple field gets tuples back from JSON lists (nested), an int stored for a float field becomes a
float. A class with its own `from_dict` classmethod (the model configs) reads its dict itself. A key the class does
not have raises `ConfigError` naming it, so a config.json from another experiment is refused in one line; a key the
dict lacks takes the field's default. Each dataclass's `__post_init__` checks run as it is built.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.overrides import as_tuples


def to_dict(config) -> dict:
    """A config dataclass (nested) -> plain dicts; tuples stay tuples until JSON writes them as lists."""
    return dataclasses.asdict(config)


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _config_class(hint):
    """The dataclass a field's hint names (also inside `X | None`), else None."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        classes = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a) and isinstance(a, type)]
        return classes[0] if len(classes) == 1 else None
    return None


def _is_tuple(hint) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return hint is tuple or typing.get_origin(hint) is tuple


def _value(hint, value, where: str):
    if value is None:
        return None
    cls = _config_class(hint)
    if cls is not None:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object (a {cls.__name__}), got {value!r}")
        return from_dict(cls, value, where)
    if _is_tuple(hint):
        return as_tuples(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls, data: dict, where: str | None = None) -> Any:
    """The `cls` instance `to_dict` made `data` from (after a JSON round trip). `where` names the subtree in
    errors (default: the class name)."""
    where = where or cls.__name__
    own = cls.__dict__.get("from_dict")
    if own is not None:  # the model configs read their own dicts (config.json's "model" since before the trees)
        return own.__get__(None, cls)(data)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} for {cls.__name__} (fields: {', '.join(sorted(names))})")
    hints = _hints(cls)
    try:
        return cls(**{name: _value(hints.get(name, Any), value, f"{where}.{name}") for name, value in data.items()})
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def tree_fields(cls) -> tuple[str, ...]:
    """The field names of a config tree class (the keys it occupies in a config.json record)."""
    return tuple(f.name for f in dataclasses.fields(cls))


def from_record(cls, record: dict) -> Any:
    """The `cls` tree stored among other keys of a config.json record (task, features, stats, ...): its own
    fields are read, the rest ignored."""
    return from_dict(cls, {k: record[k] for k in tree_fields(cls) if k in record})


def replace_everywhere(config, **fields) -> Any:
    """`config` (a config dataclass, nested) with each of `fields` set wherever the tree has a field of that name, at
    any depth: `replace_everywhere(joint_config, compute_dtype="bfloat16")` sets both the speech and the text side.
    Each rebuilt dataclass runs its checks. A name no dataclass in the tree has is a one-line `ConfigError`."""
    found = set()

    def walk(node):
        if not (dataclasses.is_dataclass(node) and not isinstance(node, type)):
            return node
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name in fields:
                found.add(f.name)
                changes[f.name] = fields[f.name]
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                changes[f.name] = walk(value)
        return dataclasses.replace(node, **changes)

    out = walk(config)
    missing = sorted(set(fields) - found)
    if missing:
        raise ConfigError(f"{type(config).__name__} has no field {', '.join(missing)} at any depth")
    return out
