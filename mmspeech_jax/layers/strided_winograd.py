"""Strided 3x3 'VALID' 2-D convolution by polyphase decomposition and Winograd tiles: the same result, ~42 % fewer
multiplies for strides (2, 2).

x (B, T, F, C), kernel (3, 3, C, O), strides (s_t, s_f) each 1 or 2 -> (B, (T - 3) // s_t + 1, (F - 3) // s_f + 1, O).

Polyphase: along an axis of stride 2, input rows 2t + i with taps i = 0, 2 (phase 0, a 2-tap stride-1 correlation)
and i = 1 (phase 1, one tap) split the convolution into stride-1 correlations of the phase subsampled inputs
x[p::2, q::2]; along an axis of stride 1 it stays one 3-tap phase. Each phase's correlation (kt x kf taps) runs as
2-D Winograd tiles F(m_t x m_f, kt x kf) (layers/winograd.py's transforms, applied along both axes; a 1-tap axis
is left as it is). For strides (2, 2) the phases are 2x2, 2x1, 1x2 and 1x1 taps: per output and input channel
25/16 + 5/4 + 5/4 + 1 = 5.06 multiplies with 4-wide tiles, against the direct 9 (the frequency axis's padding to
whole tiles adds ~5 % back for 19 outputs). The products are batched (P x C) @ (C x O) matmuls, one per Winograd
point.

The backward pass is written out (custom VJP) so it is Winograd too: dM = A dY per tile, dV = dM U^T and
dU = V^T dM, dx = the overlap-add of B dV, each tile's rows landing at tile * m + i (written as a reshape of the
first m rows plus the shifted overlap, not as a sum of interior pads that XLA evaluates per output element; B dV is
materialised before it, by an optimization barrier, so the overlap-add's fusion reads it rather than recomputing it).

Used by the ASR's Conv2d subsampling (layers/subsampling.py), where the second 256-channel strided convolution was
the costliest single layer of the `conformer_s` step on the CPU (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mmspeech_jax.layers.winograd import combine, transforms

OUTPUT_TILE = {1: 1, 2: 4, 3: 4}  # taps along an axis -> output rows per Winograd tile along it
PHASES = {1: ((0, (0, 1, 2)),), 2: ((0, (0, 2)), (1, (1,)))}  # stride -> ((phase offset, kernel taps), ...)


def output_size(size: int, stride: int) -> int:
    """Output length of a 3-tap valid correlation with `stride` over `size` inputs."""
    return (size - 3) // stride + 1


def strided_conv2d(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """3x3 'VALID' convolution of x (B, T, F, C) with kernel (3, 3, C, O) and strides in {1, 2}^2, no bias."""
    b, t, f, c = x.shape
    st, sf = strides
    if kernel.shape[:2] != (3, 3) or st not in PHASES or sf not in PHASES:
        raise ValueError(f"strided_conv2d needs a 3x3 kernel and strides in {{1, 2}}, got {kernel.shape} {strides}")
    to, fo = output_size(t, st), output_size(f, sf)
    te, fe = -(-t // st) * st, -(-f // sf) * sf
    # Phases as a reshape (its gradient is a reshape too, not interior pads).
    phased = jnp.pad(x, ((0, 0), (0, te - t), (0, fe - f), (0, 0))).reshape(b, te // st, st, fe // sf, sf, c)
    y = None
    for p, t_taps in PHASES[st]:
        for q, f_taps in PHASES[sf]:
            part = valid_correlation(phased[:, :, p, :, q], kernel[np.asarray(t_taps)][:, np.asarray(f_taps)], to, fo)
            y = part if y is None else y + part
    return y


def valid_correlation(x: jax.Array, kernel: jax.Array, out_t: int, out_f: int) -> jax.Array:
    """Stride-1 'VALID' correlation of x (B, >= out_t + kt - 1, >= out_f + kf - 1, C) with kernel (kt, kf, C, O),
    the first (out_t, out_f) outputs -> (B, out_t, out_f, O)."""
    kt, kf = kernel.shape[:2]
    mt, mf = OUTPUT_TILE[kt], OUTPUT_TILE[kf]
    tiles_t, tiles_f = -(-out_t // mt), -(-out_f // mf)
    need_t, need_f = tiles_t * mt + kt - 1, tiles_f * mf + kf - 1
    x = x[:, :need_t, :need_f]
    x = jnp.pad(x, ((0, 0), (0, need_t - x.shape[1]), (0, need_f - x.shape[2]), (0, 0)))
    return _tiled_correlation(x, kernel, tiles_t, tiles_f)[:, :out_t, :out_f]


def _separable(rows_coefficients, columns_coefficients, grid):
    """out[a][b] = sum_ij R[a, i] C[b, j] grid[i][j], along the columns first (fused elementwise combinations)."""
    inner = [[combine(coefficients, row) for coefficients in columns_coefficients] for row in grid]
    return [[combine(coefficients, [inner[i][j] for i in range(len(grid))]) for j in range(len(columns_coefficients))]
            for coefficients in rows_coefficients]


def _transforms(kt: int, kf: int):
    mt, mf = OUTPUT_TILE[kt], OUTPUT_TILE[kf]
    return mt, mf, transforms(mt, kt), transforms(mf, kf)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _tiled_correlation(x, kernel, tiles_t, tiles_f):
    """x (B, tiles_t m_t + kt - 1, tiles_f m_f + kf - 1, C) exactly -> (B, tiles_t m_t, tiles_f m_f, O)."""
    return _forward(x, kernel, tiles_t, tiles_f)[0]


def _forward(x, kernel, tiles_t, tiles_f):
    kt, kf, c, o = kernel.shape
    mt, mf, (at_t, g_t, bt_t), (at_f, g_f, bt_f) = _transforms(kt, kf)
    nt, nf, b = mt + kt - 1, mf + kf - 1, x.shape[0]
    taps = [[x[:, i : i + tiles_t * mt : mt, j : j + tiles_f * mf : mf] for j in range(nf)] for i in range(nt)]
    v = _separable(bt_t, bt_f, taps)
    v = jnp.stack([v[i][j] for i in range(nt) for j in range(nf)]).reshape(nt * nf, b * tiles_t * tiles_f, c)
    u = jnp.einsum("ai,bj,ijco->abco", jnp.asarray(g_t, kernel.dtype), jnp.asarray(g_f, kernel.dtype), kernel)
    u = u.reshape(nt * nf, c, o)
    products = jnp.einsum("npc,nco->npo", v, u).reshape(nt, nf, b, tiles_t, tiles_f, o)
    y = _separable(at_t, at_f, [[products[i, j] for j in range(nf)] for i in range(nt)])
    y = jnp.stack([jnp.stack(row, axis=-2) for row in y], axis=2)  # (B, tiles_t, m_t, tiles_f, m_f, O)
    return y.reshape(b, tiles_t * mt, tiles_f * mf, o), (v, u, kt, kf)


def _backward(tiles_t, tiles_f, residuals, dy):
    v, u, kt, kf = residuals
    b, o, c = dy.shape[0], dy.shape[-1], v.shape[-1]
    mt, mf, (at_t, g_t, bt_t), (at_f, g_f, bt_f) = _transforms(kt, kf)
    nt, nf = mt + kt - 1, mf + kf - 1
    dy = dy.reshape(b, tiles_t, mt, tiles_f, mf, o)
    d_products = _separable(at_t.T, at_f.T, [[dy[:, :, r, :, s] for s in range(mf)] for r in range(mt)])
    d_products = jnp.stack([d_products[i][j] for i in range(nt) for j in range(nf)])
    d_products = d_products.reshape(nt * nf, b * tiles_t * tiles_f, o)
    dv = jnp.einsum("npo,nco->npc", d_products, u).reshape(nt, nf, b, tiles_t, tiles_f, c)
    du = jnp.einsum("npc,npo->nco", v, d_products).reshape(nt, nf, c, o)
    d_taps = _separable(bt_t.T, bt_f.T, [[dv[i, j] for j in range(nf)] for i in range(nt)])
    # Materialised here: fused into the overlap-add below, XLA re-evaluated the whole transform per element of dx
    # (one loop fusion over the (B, T, F, C) input, 1.08 s -> 0.61 s at the benchmark's shape, 2-core CPU).
    d_taps = lax.optimization_barrier(d_taps)
    dx = overlap_add([overlap_add(row, mf, axis=2) for row in d_taps], mt, axis=1)
    dkernel = jnp.einsum("ai,bj,abco->ijco", jnp.asarray(g_t, du.dtype), jnp.asarray(g_f, du.dtype), du)
    return dx, dkernel


_tiled_correlation.defvjp(lambda x, kernel, tiles_t, tiles_f: _forward(x, kernel, tiles_t, tiles_f), _backward)


def overlap_add(parts: list, m: int, axis: int) -> jax.Array:
    """n = m + k - 1 arrays with a tile axis `axis` (size tiles): part i of tile j lands at row j m + i of the
    result (length tiles m + k - 1), overlapping parts summed."""
    overlap = len(parts) - m
    shape = list(parts[0].shape)
    shape[axis] *= m
    main = jnp.stack(parts[:m], axis=axis + 1).reshape(shape)
    if overlap == 0:
        return main
    zeros = [jnp.zeros_like(parts[0])] * (m - overlap)
    tail = jnp.stack(parts[m:] + zeros, axis=axis + 1).reshape(shape)  # part m + e of tile j -> row (j + 1) m + e
    widths = [(0, 0)] * len(shape)
    shifted = lax.slice_in_dim(jnp.pad(tail, widths[:axis] + [(m, 0)] + widths[axis + 1:]), 0, shape[axis] + overlap,
                               axis=axis)
    return jnp.pad(main, widths[:axis] + [(0, overlap)] + widths[axis + 1:]) + shifted
