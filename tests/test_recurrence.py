"""Banded semiring recurrences (losses/recurrence.py): both algorithms against a float64 NumPy loop, log-semiring
gradients against float64 central differences, the Viterbi gradient as a one-hot best path; and the models'
losses equal under either algorithm."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.losses.recurrence import ALGORITHMS, NEG, resolve, with_identity_frames
from mmspeech_jax.losses.recurrence import banded_recurrence as eager_recurrence

banded_recurrence = jax.jit(eager_recurrence, static_argnums=(2, 3, 4))  # one compile per case, not op-by-op
from mmspeech_jax.models.aligner import AlignerConfig, monotonic_alignment_search


def reference(weights, init, semiring):
    """float64 loop: a_t[s] = (+)_j w_t[s, j] (x) a_{t-1}[s - j], -inf for 'no path'."""
    a = np.where(init <= NEG / 2, -np.inf, init).astype(np.float64)
    weights = np.where(weights <= NEG / 2, -np.inf, weights)
    for t in range(weights.shape[1]):
        terms = np.full(a.shape + (weights.shape[-1],), -np.inf)
        for j in range(weights.shape[-1]):
            terms[:, j:, j] = a[:, :a.shape[1] - j] + weights[:, t, j:, j]
        a = logsumexp(terms, -1) if semiring == "log" else terms.max(-1)
    return a


def random_problem(seed, b=3, t=37, s=9, taps=3):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(b, t, s, taps))
    weights[:, :, -1] = NEG  # the last state is never reached
    init = np.full((b, s), NEG)
    init[:, 0] = 0.0
    init[1, 2] = -0.5
    return weights, init


@pytest.mark.parametrize("semiring", ["log", "max"])
@pytest.mark.parametrize("algorithm,block", [("sequential", None), ("unrolled", None), ("blocked", None), ("blocked", 1),
                                             ("blocked", 5), ("blocked", 23), ("blocked", 30)])
def test_recurrence_matches_float64_loop(semiring, algorithm, block):
    """Blocks of ceil(sqrt(23)) = 5, 1 (the sequential chain), 5, 23 (one block) and 30 (padded)."""
    weights, init = random_problem(0, t=23)
    expected = reference(weights, init, semiring)
    got = np.asarray(banded_recurrence(jnp.asarray(weights, jnp.float32), jnp.asarray(init, jnp.float32), semiring,
                                       algorithm, block))
    reachable = np.isfinite(expected)
    assert reachable.sum() > 10 and (~reachable).sum() > 0
    np.testing.assert_allclose(got[reachable], expected[reachable], rtol=1e-5, atol=1e-4)
    assert (got[~reachable] <= NEG / 2).all()


def test_identity_frames_leave_the_state_unchanged():
    weights, init = random_problem(1, t=12)
    mask = np.ones((3, 12), bool)
    mask[0, 5:] = False
    mask[2, :] = False
    masked = with_identity_frames(jnp.asarray(weights, jnp.float32), jnp.asarray(mask))
    for algorithm in ("sequential", "blocked"):
        got = np.asarray(banded_recurrence(masked, jnp.asarray(init, jnp.float32), "log", algorithm, 4))
        expected = reference(weights[:1, :5], init[:1], "log")[0]
        np.testing.assert_allclose(got[0, :-1], expected[:-1], rtol=1e-5)
        assert expected[-1] == -np.inf and got[0, -1] <= NEG / 2
        np.testing.assert_array_equal(got[2], np.asarray(jnp.asarray(init, jnp.float32))[2])


def test_log_semiring_gradient_matches_float64_central_differences():
    weights, init = random_problem(2, b=2, t=11, s=5)
    reader = np.array([[0, 0, 1.0, 0.5, 0], [0.2, 0, 0, 0, 1.0]])  # an arbitrary linear read-out of a_T

    def f64(w):
        return float(np.sum(reader * np.exp(reference(w, init, "log"))))

    for algorithm, block in (("sequential", None), ("blocked", 3)):
        grad = jax.grad(lambda w: jnp.sum(reader * jnp.exp(banded_recurrence(w, jnp.asarray(init, jnp.float32), "log",
                                                                              algorithm, block))))(
            jnp.asarray(weights, jnp.float32))
        rng = np.random.default_rng(3)
        for _ in range(12):
            index = tuple(rng.integers(0, n) for n in weights.shape)
            step = np.zeros_like(weights)
            step[index] = 1e-5
            numeric = (f64(weights + step) - f64(weights - step)) / 2e-5
            np.testing.assert_allclose(float(grad[index]), numeric, rtol=2e-3, atol=1e-5)


def test_viterbi_gradient_is_the_one_hot_best_path():
    weights, init = random_problem(4, b=2, t=15, s=7, taps=2)
    init = np.full((2, 7), NEG)
    init[:, 0] = 0.0
    for algorithm, block in (("sequential", None), ("blocked", 4)):
        grad = np.asarray(jax.grad(lambda w: banded_recurrence(w, jnp.asarray(init, jnp.float32), "max", algorithm,
                                                               block)[:, 5].sum())(jnp.asarray(weights, jnp.float32)))
        assert set(np.unique(grad)) <= {0.0, 1.0}
        # one weight per frame on the path, and its total is the best score
        np.testing.assert_array_equal(grad.sum((2, 3)), np.ones((2, 15)))
        np.testing.assert_allclose((grad * weights).sum((1, 2, 3)), reference(weights, init, "max")[:, 5], rtol=1e-5)


def test_blocked_mas_equals_sequential_on_a_padded_batch():
    rng = np.random.default_rng(5)
    b, t, n = 6, 90, 17
    log_alignment = jnp.asarray(jax.nn.log_softmax(rng.normal(size=(b, t, n)) * 3, axis=-1), jnp.float32)
    frames, tokens = np.array([90, 71, 17, 30, 12, 0]), np.array([17, 9, 17, 1, 5, 0])
    frame_mask = jnp.arange(t)[None] < frames[:, None]
    token_mask = jnp.arange(n)[None] < tokens[:, None]
    sequential = monotonic_alignment_search(log_alignment, token_mask, frame_mask, "sequential")
    search = jax.jit(monotonic_alignment_search, static_argnums=3)
    blocked = search(log_alignment, token_mask, frame_mask, "blocked")
    np.testing.assert_array_equal(np.asarray(blocked), np.asarray(sequential))
    unrolled = search(log_alignment, token_mask, frame_mask, "unrolled")
    np.testing.assert_array_equal(np.asarray(unrolled), np.asarray(sequential))
    assert np.asarray(blocked).sum() == frames[tokens > 0].sum()


def test_algorithm_names_are_checked():
    assert resolve("auto") == ("sequential" if jax.default_backend() == "cpu" else "blocked")
    with pytest.raises(ValueError, match="recurrence algorithm"):
        resolve("parallel")
    with pytest.raises(ValueError, match="semiring"):
        eager_recurrence(jnp.zeros((1, 2, 3, 2)), jnp.zeros((1, 3)), "tropical")
    assert ALGORITHMS == ("auto", "sequential", "unrolled", "blocked")
    with pytest.raises(ConfigError, match="AlignerConfig.recurrence"):
        AlignerConfig(recurrence="parallel")
    from mmspeech_jax.models.ctc_asr import preset

    with pytest.raises(ConfigError, match="ctc_recurrence"):
        preset("tiny", ctc_recurrence="parallel")


def scan_lengths(jaxpr) -> list[int]:
    """Loop iterations (trip count / unroll) of every scan in a (closed) jaxpr, nested ones included."""
    lengths = []
    for eqn in jaxpr.jaxpr.eqns if hasattr(jaxpr, "jaxpr") else jaxpr.eqns:
        if eqn.primitive.name == "scan":
            lengths.append(math.ceil(eqn.params["length"] / max(int(eqn.params.get("unroll", 1)), 1)))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(sub, "eqns") or hasattr(sub, "jaxpr"):
                    lengths += scan_lengths(sub)
    return lengths


def test_model_configs_choose_the_recurrence_of_their_losses():
    """`AlignerConfig.recurrence` reaches MAS and the forward-sum, `CTCASRConfig.ctc_recurrence` the CTC loss: with
    "sequential" the traced losses loop over every frame, with "unrolled" over every 8th, with "blocked" no loop is
    longer than T / ceil(sqrt T).
    (Their values agree: the function-level tests above and in test_ctc.py / test_aligner.py.)"""
    from benchmarks.synthetic import asr_batch
    from benchmarks.tts_step import synthetic_batch
    from mmspeech_jax.losses.tts import make_fastspeech2_loss_fn
    from mmspeech_jax.models.ctc_asr import CTCASR, make_ctc_loss_fn
    from mmspeech_jax.models.ctc_asr import preset as asr_preset
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, preset

    rng = jax.random.PRNGKey(1)
    config = preset("tiny", 141)
    batch = synthetic_batch(3, 141, n_max=24, t_max=96, n_range=(8, 24), t_range=(40, 96))
    params = jax.eval_shape(lambda: FastSpeech2(config).init({"params": rng}, batch, train=False)["params"])
    longest = {}
    for algorithm in ("sequential", "unrolled", "blocked"):
        model = FastSpeech2(dataclasses.replace(config, aligner=dataclasses.replace(config.aligner,
                                                                                    recurrence=algorithm)))
        loss_fn = make_fastspeech2_loss_fn(model, binarization_start=0)
        longest[algorithm] = max(scan_lengths(jax.make_jaxpr(lambda p, b: loss_fn(p, b, rng, True, 10))(params, batch)))
    assert longest["sequential"] >= 95 and longest["unrolled"] == 12 and longest["blocked"] <= 10, longest

    batch = asr_batch(2, t_max=200, l_max=20, t_range=(120, 200), l_range=(10, 20))
    longest = {}
    for algorithm in ("sequential", "unrolled", "blocked"):
        model = CTCASR(asr_preset("tiny", ctc_recurrence=algorithm))
        params = jax.eval_shape(lambda: model.init(rng, batch["features"], batch["frame_mask"])["params"])
        loss_fn = make_ctc_loss_fn(model)
        longest[algorithm] = max(scan_lengths(jax.make_jaxpr(lambda p, b: loss_fn(p, b, rng, True, 0))(params, batch)))
    assert longest["sequential"] >= 50, longest  # optax's scan over the subsampled frames
    assert longest["unrolled"] == math.ceil(longest["sequential"] / 8), longest
    assert longest["blocked"] <= math.ceil(math.sqrt(longest["sequential"] + 1)), longest


def test_max_of_equal_terms_sends_the_gradient_to_the_first():
    """Ties under "max" go to the first term (as the sequential MAS keeps 'stay' on a tie), so a Viterbi gradient
    stays one path even where scores are equal."""
    from mmspeech_jax.losses.recurrence import semiring_sum

    x = jnp.asarray([1.0, 2.0, 2.0])
    grads = jax.grad(lambda a, b, c: semiring_sum([a, b, c], "max").sum(), argnums=(0, 1, 2))(x, x, x)
    np.testing.assert_array_equal(np.stack([np.asarray(g) for g in grads]), [[1, 1, 1], [0, 0, 0], [0, 0, 0]])
