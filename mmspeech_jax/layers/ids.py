"""Ids for an embedding table (`nn.Embed`), checked so that an unknown id is never silently another row.

`jnp.take` (which `nn.Embed` uses) reads a negative id from the end of the table — speaker -1 became the last
voice — and an id past the end as NaN. `table_ids(ids, size, what)` decides instead, once, for every table of the
package (token and speaker embeddings):

  * concrete ids (eager `model.apply` in a notebook, host batches): any id outside [0, size) raises `FeatureError`
    with one line naming the first one and its position;
  * traced ids (under `jit`, where values are unknown): every id outside [0, size) becomes `size`, whose row
    `jnp.take` fills with NaN, so the output is visibly wrong (NaN loss, NaN mel) instead of another voice;
  * `none_id=True` (conditioning tables): -1 means "no id" and reads row 0 (callers zero that row's vector).

Host batches are checked before training (`FastSpeech2.check_batch`), and the inference API checks speaker ids
against the model's table, so inside the package the NaN path is only a last guard.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.errors import FeatureError


def _concrete(ids) -> np.ndarray | None:
    """The ids as a NumPy array when their values are known here, else None (a tracer, or another host's rows)."""
    if isinstance(ids, jax.core.Tracer):
        return None
    if isinstance(ids, jax.Array) and not ids.is_fully_addressable:
        return None
    return np.asarray(ids)


def check_ids(values: np.ndarray, size: int, what: str, *, none_id: bool = False, context: str = "") -> None:
    """`FeatureError` naming the first id of `values` outside [0, size) (-1 allowed with `none_id`)."""
    low = -1 if none_id else 0
    bad = np.flatnonzero((values < low) | (values >= size))
    if bad.size:
        where = np.unravel_index(int(bad[0]), values.shape)
        allowed = f"-1 (none) or 0-{size - 1}" if none_id else f"0-{size - 1}"
        raise FeatureError(f"{context}{what} id {int(values[where])} at position {tuple(int(i) for i in where)} is "
                           f"outside the table: it has {size} rows ({allowed})")


def table_ids(ids, size: int, what: str, *, none_id: bool = False):
    """ids (any shape) int -> ids to index a table of `size` rows (see the module docstring)."""
    values = _concrete(ids)
    if values is not None:
        check_ids(values, size, what, none_id=none_id)
    ids = jnp.asarray(ids)
    out_of_range = (ids < (-1 if none_id else 0)) | (ids >= size)
    if none_id:
        ids = jnp.where(ids == -1, 0, ids)
    return jnp.where(out_of_range, size, ids)
