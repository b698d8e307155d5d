"""Command-line config overrides: `key=value` strings applied to a frozen config dataclass.

    apply_overrides(preset("base", 80), ["dropout=0", "predictor.dropout=0.1", "conv_kernels=[9,1]"])

Keys are field names, dotted into nested dataclasses. Values are parsed as JSON (numbers, true/false, null, lists;
a list becomes a tuple where the field holds a tuple), anything else is taken as a string. The result is built with
`dataclasses.replace`, so each config's own validation (`__post_init__`) runs on the new values. Unknown keys and
malformed items raise `ConfigError` naming the item.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

from mmspeech_jax.errors import ConfigError


def as_tuples(value: Any) -> Any:
    """JSON lists (nested) back to the tuples a frozen config holds: [[1, 3], [2]] -> ((1, 3), (2,)); other values
    as they are. For `from_dict` of configs with tuple fields (config.json stores them as lists)."""
    return tuple(as_tuples(x) for x in value) if isinstance(value, (list, tuple)) else value


def parse_value(text: str) -> Any:
    """A `--set` value: JSON when it parses (numbers, true/false, null, lists, objects), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _replace(config, path: list[str], value, item: str):
    if not dataclasses.is_dataclass(config):
        raise ConfigError(f"override {item!r}: {'.'.join(path)} is inside a field that is not a config")
    names = {f.name for f in dataclasses.fields(config)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"override {item!r}: {type(config).__name__} has no field {head!r} "
                          f"(fields: {', '.join(sorted(names))})")
    current = getattr(config, head)
    if len(path) > 1:
        if current is None:
            raise ConfigError(f"override {item!r}: {type(config).__name__}.{head} is None (switched off)")
        value = _replace(current, path[1:], value, item)
    elif isinstance(current, tuple) and isinstance(value, list):
        value = as_tuples(value)
    elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    try:
        return dataclasses.replace(config, **{head: value})
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"override {item!r}: {e}") from None


def apply_overrides(config, items: Sequence[str]):
    """`config` with each `key=value` of `items` applied in order; a later item for the same key wins.

    Each step is validated, so two fields that must change together (the vocoder's `model.istft.phase=gradient`
    with `model.complex_weight=0`) would fail in one order: an item that fails is retried after the others, and the
    first failure of a pass that applies nothing is raised. An item whose key a later item sets again is dropped."""
    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        parsed.append((key.strip(), parse_value(text.strip()), item))
    last = {key: n for n, (key, _, _) in enumerate(parsed)}
    pending = [entry for n, entry in enumerate(parsed) if last[entry[0]] == n]
    while pending:
        failed, first_error = [], None
        for key, value, item in pending:
            try:
                config = _replace(config, key.split("."), value, item)
            except ConfigError as error:
                failed.append((key, value, item))
                first_error = first_error or error
        if len(failed) == len(pending):
            raise first_error
        pending = failed
    return config


def apply_tree_overrides(tree, items: Sequence[str], default: str = "model"):
    """`apply_overrides` over an experiment's whole config tree: `optimizer.learning_rate=2e-3`,
    `trainer.eval_every=100`, `model.dropout=0`. A key whose first part is not one of the tree's fields is taken
    as a field of `default` (`dropout=0` is `model.dropout=0`), as `--set` read before the trees existed."""
    names = {f.name for f in dataclasses.fields(tree)}
    routed = []
    for item in items:
        key, sep, text = item.partition("=")
        head = key.strip().split(".")[0]
        routed.append(item if not sep or head in names else f"{default}.{key.strip()}={text}")
    try:
        return apply_overrides(tree, routed)
    except ConfigError as exc:  # name the item as the user wrote it
        for item, new in zip(items, routed):
            if item != new and repr(new) in str(exc):
                raise ConfigError(str(exc).replace(repr(new), repr(item))) from None
        raise
