"""Banded semiring recurrences over time — CTC's forward variable, Viterbi — sequentially or in O(sqrt T) steps.

    a_t[s] = (+)_{j=0..J} w_t[s, j] (x) a_{t-1}[s - j]        t = 0..T-1, a_{-1} = init,  a_t[s - j] = 0-bar for s < j

with (+, x) = (logsumexp, +) ("log": CTC, forward-sum) or (max, +) ("max": Viterbi). weights (B, T, S, J + 1),
init (B, S) -> a_{T-1} (B, S). `with_identity_frames` turns masked frames into a_t = a_{t-1} (padding never
changes a result).

"sequential": one `lax.scan` step per frame. "unrolled": the same scan with UNROLL frames per loop iteration (the
same arithmetic, an eighth of the loop iterations, whose fixed cost is what an accelerator pays per frame).
"blocked": the frames in blocks of k; each block's k steps composed into one banded matrix (band kJ + 1, every
block at once, k - 1 steps), then the blocks chained (T / k steps): about 2 sqrt(T) dependent steps instead of T,
for about k J (J + 1) / 2 times the arithmetic. A step on a GPU costs a few kernel launches whatever its size, so
for T in the hundreds the blocked form is expected to be the faster there (not yet measured on a GPU:
`benchmarks/recurrence.py`); on a CPU the arithmetic costs more than the steps save (measured, RESULTS.md). "auto"
is "sequential" on the CPU backend and "blocked" elsewhere.

Gradients are JAX's own (autodiff of either form, same values). Every (+) is elementwise over shifted copies (no
gathers or scatters, forward or backward). Under "max" the first of equal values wins, so the gradient of a Viterbi
score with respect to the weights is the one-hot best path: Viterbi back-tracking by autodiff, in the same number of
steps.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

NEG = -1e30  # "no path": finite, so sums of a few thousand stay finite and gradients stay NaN-free
ALGORITHMS = ("auto", "sequential", "unrolled", "blocked")
UNROLL = 8  # frames per loop iteration of "unrolled"
SEMIRINGS = ("log", "max")


def resolve(algorithm: str) -> str:
    """"auto" -> the recurrence run on this backend ("sequential" on the CPU, "blocked" elsewhere); any other valid
    name unchanged; ValueError for an unknown one."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"recurrence algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "auto":
        return "sequential" if jax.default_backend() == "cpu" else "blocked"
    return algorithm


def semiring_sum(terms: list[jax.Array], semiring: str) -> jax.Array:
    """(+) of equally shaped arrays, elementwise (no gathers: XLA fuses it with its producers): logsumexp, or the
    maximum with the first of equal values winning, so its gradient goes to exactly one term."""
    best = terms[0]
    for term in terms[1:]:
        best = jnp.where(term > best, term, best)
    if semiring == "max":
        return best
    shift = jax.lax.stop_gradient(best)
    return shift + jnp.log(sum(jnp.exp(term - shift) for term in terms))


def shift_states(a: jax.Array, j: int, axis: int = -1) -> jax.Array:
    """out[..., s, ...] = a[..., s - j, ...] along `axis`, NEG for s < j."""
    if j == 0:
        return a
    axis = axis % a.ndim
    pad = [(0, 0)] * a.ndim
    pad[axis] = (j, 0)
    return jax.lax.slice_in_dim(jnp.pad(a, pad, constant_values=NEG), 0, a.shape[axis], axis=axis)


def with_identity_frames(weights: jax.Array, frame_mask: jax.Array) -> jax.Array:
    """Weights (B, T, S, J + 1) where masked frames carry the state unchanged (w[s, 0] = 0-one, others 0-bar)."""
    identity = jnp.full(weights.shape[-1], NEG, weights.dtype).at[0].set(0.0)
    return jnp.where(frame_mask[:, :, None, None], weights, identity)


def banded_recurrence(weights: jax.Array, init: jax.Array, semiring: str = "log", algorithm: str = "auto",
                      block: int | None = None) -> jax.Array:
    """a_{T-1} (B, S) of the recurrence above; `block` (blocked form) defaults to ceil(sqrt(T))."""
    if semiring not in SEMIRINGS:
        raise ValueError(f"semiring must be one of {SEMIRINGS}, got {semiring!r}")
    algorithm = resolve(algorithm)
    if algorithm != "blocked":
        return _sequential(weights, init, semiring, UNROLL if algorithm == "unrolled" else 1)
    return _blocked(weights, init, semiring, block or math.ceil(math.sqrt(weights.shape[1])))


def _step(a, w, semiring):  # a (..., S), w (..., S, J + 1) -> next a
    return semiring_sum([w[..., j] + shift_states(a, j) for j in range(w.shape[-1])], semiring)


def _sequential(weights, init, semiring, unroll=1):
    final, _ = jax.lax.scan(lambda a, w: (_step(a, w, semiring), None), init, jnp.swapaxes(weights, 0, 1),
                            unroll=unroll)
    return final


def _blocked(weights, init, semiring, k):
    b, t, s, taps = weights.shape
    blocks = -(-t // k)
    if blocks * k != t:  # pad with identity frames
        frame_mask = jnp.arange(blocks * k) < t
        weights = jnp.pad(weights, ((0, 0), (0, blocks * k - t), (0, 0), (0, 0)))
        weights = with_identity_frames(weights, jnp.broadcast_to(frame_mask, (b, blocks * k)))
    w = weights.reshape(b, blocks, k, s, taps)
    # composite[b, n, s, d]: best (or total) weight of getting from state s - d before block n to s at its end
    composite = w[:, :, 0]
    for i in range(1, k):  # band grows by J per step: shapes differ, so this loop is unrolled
        terms = []
        for j in range(taps):
            moved = jnp.pad(shift_states(composite, j, axis=-2), ((0, 0),) * 3 + ((j, taps - 1 - j),),
                            constant_values=NEG)  # state s - j, offset d - j, placed at offset d
            terms.append(w[:, :, i, :, j, None] + moved)
        composite = semiring_sum(terms, semiring)

    def chain(a, c):  # a (B, S) before the block, c (B, S, D) its composite: a'[s] = (+)_d c[s, d] (x) a[s - d]
        return semiring_sum([c[..., d] + shift_states(a, d) for d in range(c.shape[-1])], semiring), None

    final, _ = jax.lax.scan(chain, init, jnp.swapaxes(composite, 0, 1))
    return final
