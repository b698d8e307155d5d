"""Where a FastSpeech2 training step spends its time: forward + backward of each component at benchmark shapes.

    python -m benchmarks.tts_profile                 # base width (192), B=16, N=150, T=800
    python -m benchmarks.tts_profile --preset ljspeech

Each row is the median of 3 jitted forward+backward runs of one component, inputs passed as arguments
(`train=False` unless the row says train mode), plus dropout on one activation with Bernoulli masks (each PRNG) and
with the hash mask the layers use, and each convolution shape of the model computed directly (XLA) and by Winograd
(`layers/winograd.py`).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import median_seconds
from mmspeech_jax.layers.attention import MultiHeadSelfAttention
from mmspeech_jax.layers.dropout import hash_dropout
from mmspeech_jax.layers.transformer import FFTStack
from mmspeech_jax.layers.winograd import OUTPUT_TILE, direct_conv1d, winograd_conv1d
from mmspeech_jax.losses.aligner import forward_sum_loss
from mmspeech_jax.models.aligner import AlignmentEncoder, batch_log_prior, monotonic_alignment_search
from mmspeech_jax.models.fastspeech2 import Postnet, preset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    config = preset(args.preset, 141)
    b, n, t, d = args.batch_size, 150, 800, config.dim
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    mel = jnp.asarray(rng.normal(size=(b, t, 80)), jnp.float32)
    text = jnp.asarray(rng.normal(size=(b, n, d)), jnp.float32)
    frame_mask, token_mask = jnp.ones((b, t), bool), jnp.ones((b, n), bool)
    key = jax.random.PRNGKey(0)
    rows = []
    decoder = FFTStack(config.block, config.decoder_layers)
    rows.append((f"decoder ({config.decoder_layers} FFT blocks, T={t})",
                 median_seconds(jax.jit(jax.grad(lambda p, h, m: jnp.sum(decoder.apply(p, h, m, train=False)))),
                       decoder.init(key, x, frame_mask, train=False), x, frame_mask)))
    rows.append((f"decoder, train mode (dropout {config.dropout}, rbg keys)",
                 median_seconds(jax.jit(jax.grad(lambda p, h, m, k: jnp.sum(decoder.apply(
                     p, h, m, train=True, rngs={"dropout": k})))), decoder.init(key, x, frame_mask, train=False), x,
                     frame_mask, jax.random.key(1, impl="rbg"))))
    activation = jnp.asarray(rng.normal(size=(b, t, config.conv_filters)), jnp.float32)
    for impl in ("threefry2x32", "rbg"):
        rows.append((f"dropout on one ({b}, {t}, {config.conv_filters}) activation, fwd+bwd, Bernoulli mask, {impl}",
                     median_seconds(jax.jit(jax.grad(lambda h, k: jnp.sum(jnp.tanh(jnp.where(
                         jax.random.bernoulli(k, 0.9, h.shape), h / 0.9, 0.0))))), activation,
                         jax.random.key(0, impl=impl))))
    rows.append((f"dropout on one ({b}, {t}, {config.conv_filters}) activation, fwd+bwd, hash mask (layers/dropout.py)",
                 median_seconds(jax.jit(jax.grad(lambda h, s: jnp.sum(jnp.tanh(hash_dropout(h, s, 0.1))))),
                                activation, jnp.uint32(1))))
    convolutions = [("FFN conv_in", config.conv_kernels[0], d, config.conv_filters),
                    ("FFN conv_out", config.conv_kernels[1], config.conv_filters, d),
                    ("postnet middle conv", config.postnet_kernel, config.postnet_channels, config.postnet_channels)]
    for label, k, c_in, c_out in convolutions:
        h = jnp.asarray(rng.normal(size=(b, t, c_in)), jnp.float32)
        kernel = jnp.asarray(rng.normal(size=(k, c_in, c_out)) / np.sqrt(k * c_in), jnp.float32)
        for algorithm in ("direct", "winograd"):
            if algorithm == "winograd" and k not in OUTPUT_TILE:
                continue
            conv = (direct_conv1d if algorithm == "direct" else
                    lambda a, w, k=k: winograd_conv1d(a, w, OUTPUT_TILE[k]))
            rows.append((f"{label} (kernel {k}, {c_in} -> {c_out}, T={t}), {algorithm}",
                         median_seconds(jax.jit(jax.grad(lambda a, w, f=conv: jnp.sum(jnp.tanh(f(a, w))),
                                                         argnums=(0, 1))), h, kernel)))
    attention = MultiHeadSelfAttention(d, config.heads)
    rows.append((f"one self-attention (T={t}, {config.heads} heads)",
                 median_seconds(jax.jit(jax.grad(lambda p, h, m: jnp.sum(attention.apply(p, h, m, train=False)))),
                       attention.init(key, x, frame_mask, train=False), x, frame_mask)))
    encoder = FFTStack(config.block, config.encoder_layers)
    rows.append((f"encoder ({config.encoder_layers} FFT blocks, N={n})",
                 median_seconds(jax.jit(jax.grad(lambda p, h, m: jnp.sum(encoder.apply(p, h, m, train=False)))),
                       encoder.init(key, text, token_mask, train=False), text, token_mask)))
    postnet = Postnet(config)
    rows.append(("postnet", median_seconds(jax.jit(jax.grad(lambda p, h, m: jnp.sum(postnet.apply(p, h, m, train=False)))),
                                  postnet.init(key, mel, frame_mask, train=False), mel, frame_mask)))
    aligner = AlignmentEncoder(config.aligner)
    prior = jnp.asarray(batch_log_prior([n] * b, [t] * b, n, t))
    rows.append(("aligner soft alignment + forward-sum",
                 median_seconds(jax.jit(jax.grad(lambda p, tx, me, pr: forward_sum_loss(
                     aligner.apply(p, tx, token_mask, me, frame_mask, pr), token_mask, frame_mask))),
                       aligner.init(key, text, token_mask, mel, frame_mask, prior), text, mel, prior)))
    log_soft = jnp.asarray(np.log(rng.dirichlet(np.ones(n), size=(b, t))), jnp.float32)
    rows.append(("monotonic alignment search (forward only)",
                 median_seconds(jax.jit(monotonic_alignment_search), log_soft, token_mask, frame_mask)))
    start = time.perf_counter()
    batch_log_prior([n] * b, [t] * b, n, t)
    rows.append(("beta-binomial prior on the host (NumPy)", time.perf_counter() - start))
    print(f"| component ({args.preset}, B={b}) | seconds |\n| --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
