"""Dense layer with a hand-written backward pass that picks which operand of the weight gradient gets transposed.

x (..., K), kernel (K, F) -> (..., F), the same parameters (`kernel` (K, F), `bias` (F,)) and initialisation as
`flax.linen.Dense`, so checkpoints are interchangeable.

Why: the weight gradient x^T dy contracts the leading (rows) axis of both operands. XLA's CPU dot takes one operand
with its contracting axis leading but copies the other into the transposed layout first, and under autodiff the copy
lands on dy. For a widening layer (F > K: the first feed-forward matrix, the fused q/k/v projection, the
convolution module's pointwise_in) dy is the wide one. Here the weight gradient is computed as (dy^T x)^T when
F > K, so the copy is of x, the narrow operand, and the final transpose is of the small (F, K) result: for
(5984, 256) x and a (5984, 1024) dy made by an activation's backward pass, 21.7 ms -> 17.9 ms (2-core Xeon, jax
0.10.2; benchmarks/RESULTS.md, 2026-12-01). Numerically the same products and sums.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


@jax.custom_vjp
def dense_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x (..., K) @ kernel (K, F) -> (..., F); gradients as in the module docstring."""
    return x @ kernel


def _forward(x, kernel):
    return x @ kernel, (x, kernel)


def _backward(residuals, dy):
    x, kernel = residuals
    k, f = kernel.shape
    dx = dy @ kernel.T
    rows_x, rows_dy = x.reshape(-1, k), dy.reshape(-1, f)
    by_rows = (((0,), (0,)), ((), ()))
    if f > k:  # transpose the narrow x, not the wide dy (see the module docstring)
        dkernel = lax.dot_general(rows_dy, rows_x, by_rows).T
    else:
        dkernel = lax.dot_general(rows_x, rows_dy, by_rows)
    return dx, dkernel.astype(kernel.dtype)


dense_matmul.defvjp(_forward, _backward)


class Dense(nn.Module):
    """Drop-in for `nn.Dense(features)` (same parameter names, shapes and initialisers); computes in `dtype` with
    float32 parameters."""

    features: int
    use_bias: bool = True
    dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        y = dense_matmul(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
        return y
