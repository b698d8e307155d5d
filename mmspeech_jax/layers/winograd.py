"""1-D 'SAME' convolution by Winograd's minimal filtering (Lavin & Gray, 2016): the same result, fewer multiplies.

x (B, T, C), kernel (K, C, F) -> (B, T, F), with K odd. A direct convolution costs K (C x F) multiply-adds per output
frame. Winograd F(m, K) computes m output frames from a tile of n = m + K - 1 input frames with n elementwise
products instead of m K:

    y_tile = A^T [ (G g) * (B^T d_tile) ]        (per channel pair: g the K taps, d_tile the n frames)

so the convolution becomes n batched (T/m x C) @ (C x F) matmuls, n / (m K) of the direct FLOPs: 1/2 for K = 3 with
m = 4, 2/5 for K = 5 with m = 4. The backward pass is written out (custom VJP) so it is Winograd too: the output
gradient is transformed per tile (dM = A dY), dV = dM U^T and dU = V^T dM are the same batched matmuls, and the
input gradient is the overlap-add of B dV; autodiff of the forward would leave XLA transposes between them.

The transforms come from the Cook-Toom construction (the transposition principle applied to polynomial
multiplication by evaluation at n points, the last one at infinity): with V_k the n x k matrix of the points' powers
0..k-1 (row "infinity" = e_{k-1}), A^T = V_m^T, G = V_K and B^T = V_n^{-T}. They are computed here in float64 from
the points 0, 1, -1, 2, -2, 1/2, -1/2 (small points keep the float32 error near 1e-6 relative; tests compare with
a float64 direct convolution).

`Conv1D` is a drop-in for `flax.linen.Conv` with 'SAME' padding (the same `kernel` (K, C, F) and `bias` (F,)
parameters, so checkpoints are interchangeable). `algorithm="auto"` uses Winograd for float32 on the CPU backend,
where it was measured faster (benchmarks/RESULTS.md); elsewhere XLA's convolution, whose GPU libraries choose their
own algorithms, and whose bf16 rounding Winograd's transforms would amplify.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)
OUTPUT_TILE = {3: 4, 5: 4}  # kernel size -> output frames per tile (n = m + K - 1 <= len(POINTS) + 1)
ALGORITHMS = ("auto", "winograd", "direct")


def transforms(m: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A^T (m, n), G (n, k), B^T (n, n)) float64 for F(m, k), n = m + k - 1."""
    n = m + k - 1
    if n - 1 > len(POINTS):
        raise ValueError(f"F({m}, {k}) needs {n - 1} finite points; only {len(POINTS)} are defined")

    def powers(columns: int) -> np.ndarray:
        finite = np.asarray(POINTS[: n - 1])[:, None] ** np.arange(columns)[None, :]
        return np.concatenate([finite, np.eye(columns)[-1:]])

    return powers(m).T, powers(k), np.linalg.inv(powers(n)).T


def combine(coefficients, arrays):
    """sum_j c_j a_j over the nonzero c_j, as elementwise ops that XLA fuses (a dot would be a tiny matmul)."""
    return sum(float(c) * a for c, a in zip(coefficients, arrays) if c != 0.0)


def apply_transform(matrix: np.ndarray, arrays) -> jax.Array:
    """Stacked rows `matrix @ arrays`: matrix (R, J) float64 constants, arrays J arrays of one shape S and dtype ->
    (R, *S), row r = sum_j matrix[r, j] arrays[j]. Written as J broadcast multiply-adds of whole columns (zero
    columns left out), which XLA fuses into one loop like `combine` row by row, but in ~2J operations instead of one
    per nonzero coefficient: Winograd's transforms have dense matrices, and fewer operations trace, lower and
    compile faster (benchmarks/RESULTS.md, 2026-12-06)."""
    dtype = arrays[0].dtype
    terms = [jnp.asarray(matrix[:, j], dtype).reshape((-1,) + (1,) * a.ndim) * a[None]
             for j, a in enumerate(arrays) if np.any(matrix[:, j] != 0.0)]
    return sum(terms[1:], terms[0])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def winograd_conv1d(x: jax.Array, kernel: jax.Array, m: int) -> jax.Array:
    """'SAME' convolution of x (B, T, C) with kernel (K, C, F), K odd, by F(m, K) tiles -> (B, T, F), no bias."""
    return _forward(x, kernel, m)[0]


def _forward(x, kernel, m):
    k, c, f = kernel.shape
    b, t, _ = x.shape
    at, g, bt = transforms(m, k)
    n = m + k - 1
    tiles = -(-t // m)
    left = (k - 1) // 2
    padded = jnp.pad(x, ((0, 0), (left, tiles * m + k - 1 - t - left), (0, 0)))
    taps = [padded[:, j : j + tiles * m : m][:, :tiles] for j in range(n)]  # tap j of every tile: (B, tiles, C)
    v = apply_transform(bt, taps).reshape(n, b * tiles, c)
    u = jnp.einsum("ik,kcf->icf", jnp.asarray(g, kernel.dtype), kernel)
    products = jnp.einsum("ipc,icf->ipf", v, u).reshape(n, b, tiles, f)
    y = jnp.moveaxis(apply_transform(at, list(products)), 0, 2)  # (B, tiles, m, F)
    return y.reshape(b, tiles * m, f)[:, :t], (v, u)


def _backward(m, residuals, dy):
    v, u = residuals
    (b, t, f), n, c = dy.shape, v.shape[0], v.shape[-1]
    k = n - m + 1
    at, g, bt = transforms(m, k)
    tiles = -(-t // m)
    left = (k - 1) // 2
    dy_tiles = jnp.pad(dy, ((0, 0), (0, tiles * m - t), (0, 0))).reshape(b, tiles, m, f)
    outputs = [dy_tiles[:, :, r] for r in range(m)]
    d_products = apply_transform(at.T, outputs).reshape(n, b * tiles, f)
    dv = jnp.einsum("ipf,icf->ipc", d_products, u).reshape(n, b, tiles, c)
    du = jnp.einsum("ipc,ipf->icf", v, d_products)
    length = tiles * m + k - 1
    zero = jnp.zeros((), dy.dtype)
    d_taps = [combine(bt[:, j], list(dv)) for j in range(n)]  # each fuses into its pad below
    d_padded = sum(lax.pad(d_taps[j], zero, [(0, 0, 0), (j, length - j - (tiles - 1) * m - 1, m - 1), (0, 0, 0)])
                   for j in range(n))
    dx = d_padded[:, left : left + t]
    dkernel = jnp.einsum("ik,icf->kcf", jnp.asarray(g, du.dtype), du)
    return dx, dkernel


winograd_conv1d.defvjp(lambda x, kernel, m: _forward(x, kernel, m), _backward)


def direct_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """XLA's 'SAME' convolution (the reference path): x (B, T, C), kernel (K, C, F) -> (B, T, F)."""
    return lax.conv_general_dilated(x, kernel, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC"))


def uses_winograd(kernel_size: int, dtype, algorithm: str = "auto") -> bool:
    """Whether a convolution with this kernel size and dtype runs as Winograd under `algorithm`: "winograd" for kernel
    sizes 3 and 5, "direct" never, "auto" for float32 on the CPU backend only."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"convolution algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "direct" or kernel_size not in OUTPUT_TILE:
        return False
    return algorithm == "winograd" or (jnp.dtype(dtype) == jnp.float32 and jax.default_backend() == "cpu")


class Conv1D(nn.Module):
    """`nn.Conv(features, (kernel_size,), padding="SAME")` with the same parameters; Winograd where it is faster."""

    features: int
    kernel_size: int
    dtype: jnp.dtype = jnp.float32
    algorithm: str = "auto"

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        if uses_winograd(self.kernel_size, self.dtype, self.algorithm):
            y = winograd_conv1d(x, kernel, OUTPUT_TILE[self.kernel_size])
        else:
            y = direct_conv1d(x, kernel)
        return y + bias.astype(self.dtype)
