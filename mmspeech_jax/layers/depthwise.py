"""Depthwise 1-D convolution ('SAME' padding) as K shifted multiply-adds, with a hand-written backward pass.

x (B, T, D), kernel (K, D) -> (B, T, D). `DepthwiseConv1D` keeps `nn.Conv(features=D, feature_group_count=D)`'s
parameters (`kernel` (K, 1, D), `bias` (D,)), so checkpoints written with the grouped convolution load unchanged.
Used by the Conformer's convolution module and the iSTFT vocoder's ConvNeXt blocks: on a 2-core CPU XLA's grouped
convolution was 3x slower (Conformer, B=16, T=352, D=144, K=15) and took ~22 % of the iSTFT vocoder's train step
(benchmarks/RESULTS.md, 2026-12-06).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _shifted_sum(padded: jax.Array, taps: jax.Array, length: int) -> jax.Array:
    """sum_i padded[:, i : i + length] * taps[i]: (B, length + K - 1, D), (K, D) -> (B, length, D), one fused pass."""
    return sum(padded[:, i : i + length] * taps[i] for i in range(taps.shape[0]))


@jax.custom_vjp
def depthwise_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """'SAME' depthwise convolution: x (B, T, D), kernel (K, D) -> (B, T, D), y[t] = sum_i x[t + i - (K - 1) // 2] k[i].

    Forward and input gradient are K shifted multiply-adds each, which XLA fuses into one pass. The backward pass is
    written out because under autodiff XLA kept every one of the K shifted copies of x from the forward pass for
    the kernel gradient: K separate (B, T, D) buffers written per layer (30 fusions of ~1 ms each per `conformer_s`
    block, 2-core CPU). Here the residuals are x and the kernel only, and the backward pass slices x anew."""
    return _depthwise_forward(x, kernel)[0]


def _depthwise_forward(x, kernel):
    k, left = kernel.shape[0], (kernel.shape[0] - 1) // 2
    padded = jnp.pad(x, ((0, 0), (left, k - 1 - left), (0, 0)))
    return _shifted_sum(padded, kernel, x.shape[1]), (x, kernel)


def _depthwise_backward(residuals, dy):
    x, kernel = residuals
    k, left, t = kernel.shape[0], (kernel.shape[0] - 1) // 2, x.shape[1]
    # dx[t] = sum_i dy[t - i + left] k[i]: the same shifted sum over dy padded the other way, kernel reversed.
    dx = _shifted_sum(jnp.pad(dy, ((0, 0), (k - 1 - left, left), (0, 0))), kernel[::-1], t)
    # The barrier keeps XLA from merging these slices with the forward pass's identical ones (it then kept all K).
    padded = jnp.pad(lax.optimization_barrier(x), ((0, 0), (left, k - 1 - left), (0, 0)))
    # dk[i] = sum_{b, t} padded[b, t + i] dy[b, t]: one variadic reduction over t for all K taps, so x and dy are
    # read once (K separate sums cost ~4x as much: each wrote its product out before reducing it), then over b.
    # Summed in float32 whatever the compute dtype (a bf16 sum over T frames would lose the kernel gradient).
    padded, dy32 = padded.astype(jnp.float32), dy.astype(jnp.float32)
    products = tuple(padded[:, i : i + t] * dy32 for i in range(k))
    zeros = tuple(jnp.zeros((), jnp.float32) for _ in range(k))
    sums = lax.reduce(products, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (1,))  # K x (B, D)
    return dx, jnp.stack(sums).sum(axis=1).astype(kernel.dtype)


depthwise_conv1d.defvjp(_depthwise_forward, _depthwise_backward)


class DepthwiseConv1D(nn.Module):
    """Depthwise 1-D convolution, 'SAME' padding: params `kernel` (K, 1, D) and `bias` (D,) as `nn.Conv` with
    `feature_group_count=D`. Computed by `depthwise_conv1d` (shifted multiply-adds): on a 2-core CPU XLA's grouped
    convolution was 3x slower here (forward + backward at B=16, T=352, D=144, K=15)."""

    kernel_size: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        d, k = x.shape[-1], self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, 1, d)).astype(self.dtype)
        bias = self.param("bias", nn.initializers.zeros, (d,)).astype(self.dtype)
        return depthwise_conv1d(x.astype(self.dtype), kernel[:, 0]) + bias
