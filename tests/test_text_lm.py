"""The character-level Transformer LM: causality, its loss against NumPy, the fusion scorer, batches, experiment."""

import json

import jax
import numpy as np
import pytest

from mmspeech_jax.data.text_batches import TextBatches
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.text_lm import (PRESETS, TextLM, TextLMConfig, encode_sentences, lm_scorer,
                                         make_lm_loss_fn)

CONFIG = TextLMConfig(**PRESETS["tiny"], dropout=0.0)


@pytest.fixture(scope="module")
def lm():
    model = TextLM(CONFIG)
    tokens, mask = encode_sentences([[5, 6, 7]], 16)
    return model, model.init(jax.random.PRNGKey(0), tokens, mask)["params"]


def test_causal_and_padding_free(lm):
    model, params = lm
    tokens, mask = encode_sentences([[5, 6, 7, 8, 9], [5, 6, 7, 20, 21]], 16)
    logits = np.asarray(model.apply({"params": params}, tokens, mask))
    np.testing.assert_allclose(logits[0, :4], logits[1, :4], atol=1e-5)  # positions before the change agree
    assert np.abs(logits[0, 4] - logits[1, 4]).max() > 1e-3
    short, short_mask = encode_sentences([[5, 6, 7, 8, 9]], 32)  # other padding, same valid positions
    np.testing.assert_allclose(np.asarray(model.apply({"params": params}, short, short_mask))[0, :7], logits[0, :7],
                               atol=1e-5)


def test_loss_is_the_mean_next_token_cross_entropy(lm):
    model, params = lm
    sentences = [[5, 6, 7], [8, 9, 10, 11, 12, 13]]
    tokens, mask = encode_sentences(sentences, 16)
    loss, parts = make_lm_loss_fn(model)(params, {"tokens": tokens, "mask": mask}, jax.random.PRNGKey(0), False, 0)
    logits = np.asarray(model.apply({"params": params}, tokens, mask), np.float64)
    nll = []
    for row, ids in enumerate(sentences):
        sequence = [0] + ids + [0]
        for n in range(len(sequence) - 1):
            z = logits[row, n]
            nll.append(np.log(np.exp(z - z.max()).sum()) + z.max() - z[sequence[n + 1]])
    np.testing.assert_allclose(float(loss), np.mean(nll), rtol=1e-5)
    assert int(parts["counts"]["tokens"]) == len(nll)


def test_scorer_matches_the_forward_pass_at_the_prefix_end(lm):
    model, params = lm
    score = lm_scorer(model, params, length_quantum=8)
    prefixes = [(), (5,), (5, 6, 7, 8, 9, 10, 11, 12, 13)]
    got = score(prefixes)
    for row, prefix in enumerate(prefixes):
        tokens, mask = encode_sentences([list(prefix)], 16)
        logits = np.asarray(model.apply({"params": params}, tokens, mask), np.float64)[0, len(prefix)]
        expected = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        np.testing.assert_allclose(got[row], expected, atol=1e-5)


def test_text_batches_resume_exactly_and_keep_few_shapes():
    sentences = [[1] * n for n in range(1, 90)]
    run = TextBatches(sentences, 8, lengths=(16, 64, 128), seed=3)
    for _ in range(13):
        next(run)
    state = run.get_state()
    expected = [next(run) for _ in range(7)]
    resumed = TextBatches(sentences, 8, lengths=(16, 64, 128), seed=3)
    resumed.set_state(state)
    for a, b in zip(expected, (next(resumed) for _ in range(7))):
        np.testing.assert_array_equal(a["tokens"], b["tokens"])
    shapes = {next(run)["tokens"].shape for _ in range(40)}
    assert shapes <= {(8, 16), (8, 64), (8, 128)}
    last = list(TextBatches(sentences, 8, lengths=(128,), shuffle=False).one_pass())[-1]
    assert last["mask"].any(axis=1).sum() == 89 % 8  # filler rows predict nothing
    with pytest.raises(ConfigError):
        TextBatches([], 8)


def test_experiment_trains_and_the_transcriber_loads_it(tmp_path):
    from experiments import text_lm
    from mmspeech_jax.transcribe import load_lm_scorer

    report = text_lm.main(["--preset", "tiny", "--steps", "6", "--eval_every", "3", "--workdir", str(tmp_path),
                           "--no_progress", "--template_sentences", "50", "--max_sentences", "300",
                           "--batch_size", "16"])
    assert report["steps"] == 6 and report["train_sentences"] == 300
    assert 0 < report["natural_bits_per_char"] < np.log2(CONFIG.vocab_size) + 1
    assert json.loads((tmp_path / "config.json").read_text())["task"] == "lm"
    score = load_lm_scorer(tmp_path)
    rows = score([(), (12, 13)])
    np.testing.assert_allclose(np.exp(rows).sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="not a language-model workdir"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.json").write_text(json.dumps({"task": "asr"}))
        load_lm_scorer(tmp_path / "other")


def test_export_of_the_lm_loads_and_gives_the_same_logits(tiny_lm_workdir, tmp_path, capsys):
    from mmspeech_jax.cli import main as cli
    from mmspeech_jax.export import load_exported
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    out = tmp_path / "exported"
    assert cli(["export", "--workdir", str(tiny_lm_workdir), "--out", str(out)]) == 0
    model, params, table, mel = load_exported(out)
    assert isinstance(model, TextLM) and mel is None and len(table) == CONFIG.vocab_size
    tokens, mask = encode_sentences([[5, 6, 7, 8]], 16)
    original, _ = restore_params(tiny_lm_workdir)
    reference = TextLM(TextLMConfig.from_dict(read_workdir_config(tiny_lm_workdir)["model"]))
    np.testing.assert_allclose(np.asarray(model.apply({"params": params}, tokens, mask)),
                               np.asarray(reference.apply({"params": original}, tokens, mask)), atol=1e-6)
    assert cli(["export", "--workdir", str(tiny_lm_workdir), "--out", str(tmp_path / "s"), "--stablehlo"]) == 2
    assert "task 'lm' has no serialized export" in capsys.readouterr().err


def test_text_batches_group_similar_lengths_and_visit_each_sentence_once_per_epoch():
    rng = np.random.default_rng(0)
    sentences = [[1] * int(n) for n in rng.integers(1, 120, size=800)]
    run = TextBatches(sentences, 16, lengths=(32, 64, 128), seed=1, group=10)
    epoch = [next(run) for _ in range(50)]  # 800 / 16 batches
    seen = sorted(int(m.sum()) - 2 for b in epoch for m in b["mask"])  # each row's length
    assert seen == sorted(len(s) for s in sentences)
    spread = [np.ptp(b["mask"].sum(axis=1)) for b in epoch]
    assert np.median(spread) < 20  # random batches of 16 from 1..119 would spread ~100
    assert run.get_state() == {"epoch": 0, "position": 50}
    next(run)
    assert run.get_state() == {"epoch": 1, "position": 1}
