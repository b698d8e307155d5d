"""The CTC speech recognizer's training recipe, shared by the experiments that train one
(`experiments/ljspeech_asr.py`, `experiments/ssl_finetune.py`): flags, the evaluation part of their config trees,
config.json, the fit, the TensorBoard hook,
evaluation (greedy and beam CER/WER, LM fusion weights chosen on validation, the natural evaluation set). Not an
experiment itself (no `main`): experiments import it, never each other.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from experiments.configs.ljspeech_asr import ASREvaluationConfig
from experiments.flags import WHOLE_SPLIT, add_data_args, add_trainer_args
from experiments.wiring import Trained, eval_pipeline, train_on_cache, write_config
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.data import make_batch_iterator
from mmspeech_jax.decoding.ctc import decode_batch, memoized, prefix_beam_search
from mmspeech_jax.evaluate.asr import error_rates
from mmspeech_jax.evaluate.plots import ctc_example_figure, save_figure
from mmspeech_jax.models.ctc_asr import CTCASR, PRESETS, make_ctc_loss_fn, model_inputs
from mmspeech_jax.text.symbols import character_table
from mmspeech_jax.train.summaries import Image, Scalar, Text, figure_pixels
from mmspeech_jax.train.init import init_params as compiled_init
from mmspeech_jax.train.distributed import is_primary


def add_training_args(p: argparse.ArgumentParser, workdir: str, steps: int) -> None:
    p.add_argument("--workdir", default=workdir)
    p.add_argument("--preset", default="base", choices=sorted(PRESETS))
    p.add_argument("--encoder", default="conformer", choices=["conformer", "transformer"])
    add_data_args(p)
    add_trainer_args(p, steps=steps, learning_rate=2e-3, eval_every=200)
    p.add_argument("--no_spec_augment", action="store_true")
    p.add_argument("--beam_width", type=int, default=8)
    p.add_argument("--lm", default=None, metavar="LM_WORKDIR",
                   help="a text LM workdir (python -m experiments.text_lm): its weight and length bonus are chosen "
                        "on validation and every split is also decoded with shallow fusion (*_cer_lm)")
    p.add_argument("--natural_eval_utterances", type=int, default=None,
                   help="score the first N sentences of the natural evaluation set (default: all; 0: skip)")
    p.add_argument("--lm_tune_utterances", type=int, default=64,
                   help="validation utterances the LM weight and length bonus are chosen on")
    p.add_argument("--num_samples", type=int, default=3, help="test utterances to plot (plots/*.png)")


def evaluation_config(args) -> ASREvaluationConfig:
    """The evaluation part of the tree from `add_training_args`'s flags."""
    return ASREvaluationConfig(beam_width=args.beam_width, lm=args.lm,
                               natural_eval_utterances=args.natural_eval_utterances,
                               lm_tune_utterances=args.lm_tune_utterances, num_samples=args.num_samples)


def with_features(tree, n_mels: int):
    """`tree` with its model's input width set to the feature cache's mel channels."""
    return dataclasses.replace(tree, model=dataclasses.replace(tree.model, n_mels=n_mels))


def write_workdir_config(workdir: Path, tree, cache, **extra):
    """The ASR run's config.json (task "asr": the whole tree, the features and their statistics) and symbols.json
    (`wiring.write_config`); returns the held workdir lock."""
    return write_config(workdir, "asr", tree, cache, character_table(), primary=is_primary(), **extra)


def train(tree, cache, workdir: Path, init_params=None, tx=None, train_positions=None, mesh=None, natural=None,
          curve: list | None = None) -> Trained:
    """Trains the tree's CTC model with the shared trainer (`wiring.train_on_cache`), over `mesh` when given.
    `init_params` (e.g. a pretrained encoder merged into fresh params) and `tx` (e.g. a fine-tuning strategy's
    masked optimizer, on `tree.optimizer`'s schedule, which the logs record) override the defaults."""
    model = CTCASR(tree.model)
    prepare = lambda batch: model_inputs(batch, cache.stats)
    init = lambda first: compiled_init(model, {"params": jax.random.PRNGKey(tree.trainer.seed)}, first["features"],
                                       first["frame_mask"], train=False)
    on_eval = eval_summaries(model, cache, eval_pipeline(tree.pipeline), tree.evaluation.num_samples, natural, curve)
    loss_fn = make_ctc_loss_fn(model, cache.stats, mel=MelConfig(**cache.config["mel"]))
    return train_on_cache(workdir, tree, cache, model, loss_fn, prepare, init, params=init_params,
                          tx=tx, positions=train_positions, on_eval=on_eval, mesh=mesh)


def example_figure(batch, r, log_probs, lengths, table, reference: str, hypothesis: str, split: str):
    """Row r of a batch and its CTC output -> `ctc_example_figure` of its valid frames."""
    n = int(batch["transcript_lengths"][r])
    return ctc_example_figure(batch["mel"][r, : int(batch["frame_lengths"][r])], log_probs[r, : int(lengths[r])],
                              batch["transcript_ids"][r, :n], table.symbols, reference, hypothesis,
                              title=f"{split} utterance {int(batch['index'][r])}")


def greedy_texts(forward, params, cache, eval_config, split: str, stats: dict) -> tuple[list[str], list[str]]:
    """(references, greedy transcripts) of every utterance of a cache's split, features normalized by `stats`."""
    table, refs, hyps = character_table(), [], []
    for batch in make_batch_iterator(cache, split, eval_config, verbose=False, **WHOLE_SPLIT):
        inputs = model_inputs(batch, stats)
        log_probs, mask = jax.device_get(forward(params, inputs["features"], inputs["frame_mask"]))
        rows = np.flatnonzero(batch["example_mask"])
        hyps += ["".join(table.lookup(ids)) for ids in decode_batch(log_probs[rows], mask[rows].sum(-1), "greedy")]
        refs += [cache.texts[int(batch["index"][r])] for r in rows]
    return refs, hyps


def eval_summaries(model, cache, eval_config, count: int, natural=None, curve: list | None = None):
    """The trainer's `on_eval` hook (None when there is nothing to show): after each evaluation, for the first
    `count` validation utterances, the CTC figure (`example_figure`) as an Image and the reference and greedy
    transcript as Text; with `natural` (the natural evaluation set's feature cache), its greedy CER as the Scalar
    `natural_cer_greedy`, also appended to `curve` as {"step", "seconds", "natural_cer_greedy"} (seconds since the
    hook was made, i.e. this process's training time including compilation)."""
    if count == 0 and natural is None:
        return None
    batch = next(iter(make_batch_iterator(cache, "validation", eval_config, verbose=False, **WHOLE_SPLIT)))
    inputs, rows = model_inputs(batch, cache.stats), np.flatnonzero(batch["example_mask"])[:count]
    forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
    table, started = character_table(), time.perf_counter()

    def on_eval(params, step):
        seconds = time.perf_counter() - started
        summaries = {}
        if count:
            log_probs, mask = jax.device_get(forward(params, inputs["features"], inputs["frame_mask"]))
            lengths = mask.sum(-1)
            for r, ids in zip(rows, decode_batch(log_probs[rows], lengths[rows], "greedy", 1)):
                uid, hypothesis = int(batch["index"][r]), "".join(table.lookup(ids))
                reference = cache.texts[uid]
                fig = example_figure(batch, r, log_probs, lengths, table, reference, hypothesis, "validation")
                summaries[f"utterance_{uid}/ctc"] = Image(figure_pixels(fig))
                summaries[f"utterance_{uid}/transcript"] = Text(f"reference: {reference}\n\ngreedy: {hypothesis}")
        if natural is not None:
            cer = error_rates(*greedy_texts(forward, params, natural, eval_config, "test", cache.stats))["cer"]
            summaries["natural_cer_greedy"] = Scalar(cer)
            if curve is not None:
                curve.append({"step": int(step), "seconds": round(seconds, 1), "natural_cer_greedy": cer})
        return summaries

    return on_eval


LM_WEIGHTS, LENGTH_BONUSES = (0.25, 0.5, 0.8), (0.0, 0.75, 1.5)


def tune_fusion(model, params, cache, eval_config, lm, beam_width: int, count: int) -> dict:
    """The (lm_weight, length_bonus) of the LM_WEIGHTS x LENGTH_BONUSES grid with the lowest CER on the first
    `count` validation utterances: {"lm_weight", "length_bonus", "lm_tuning_cer"}."""
    forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
    outputs, refs = [], []
    for batch in make_batch_iterator(cache, "validation", eval_config, verbose=False, **WHOLE_SPLIT):
        inputs = model_inputs(batch, cache.stats)
        log_probs, mask = jax.device_get(forward(params, inputs["features"], inputs["frame_mask"]))
        for r in np.flatnonzero(batch["example_mask"]):
            outputs.append((log_probs[r], int(mask[r].sum())))
            refs.append(cache.texts[int(batch["index"][r])])
        if len(refs) >= count:
            break
    outputs, refs, table = outputs[:count], refs[:count], character_table()
    scorers = [memoized(lm) for _ in outputs]  # an utterance's prefixes are scored once for the whole grid
    best = None
    for weight in LM_WEIGHTS:
        for bonus in LENGTH_BONUSES:
            hyps = ["".join(table.lookup(prefix_beam_search(lp, n, beam_width, lm=scorer, lm_weight=weight,
                                                             length_bonus=bonus)))
                    for (lp, n), scorer in zip(outputs, scorers)]
            cer = error_rates(refs, hyps)["cer"]
            if best is None or cer < best["lm_tuning_cer"]:
                best = {"lm_weight": weight, "length_bonus": bonus, "lm_tuning_cer": cer}
    return best


def evaluate(model, params, cache, eval_config, splits=("validation", "test"), beam_width: int = 8,
             plot_dir: Path | None = None, num_plots: int = 0, stats: dict | None = None,
             fusion: dict | None = None, fusion_splits=None) -> dict:
    """CER/WER of greedy and prefix-beam decoding per split, against the corpus transcripts; with `plot_dir`, a
    PNG of each of the first `num_plots` utterances of the last split (`example_figure`). Features are normalized
    with `stats` (the training cache's; default: `cache.stats`). `fusion` ({"lm", "lm_weight", "length_bonus"}):
    also beam search with shallow fusion (`*_cer_lm`, `*_wer_lm`) on the splits in `fusion_splits` (default all;
    fused decoding costs ~0.6 s an utterance on 2 cores)."""
    stats = cache.stats if stats is None else stats
    forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
    table = character_table()
    report, plotted = {}, 0
    for split in splits:
        fused_here = fusion is not None and (fusion_splits is None or split in fusion_splits)
        methods = ("greedy", "beam") + (("lm",) if fused_here else ())
        refs, greedy, beam, fused = [], [], [], []
        for batch in make_batch_iterator(cache, split, eval_config, verbose=False, **WHOLE_SPLIT):
            inputs = model_inputs(batch, stats)
            log_probs, mask = jax.device_get(forward(params, inputs["features"], inputs["frame_mask"]))
            rows = np.flatnonzero(batch["example_mask"])
            lengths = mask.sum(-1)
            for method, out in zip(methods, (greedy, beam, fused)):
                extra = {k: v for k, v in fusion.items() if k in ("lm", "lm_weight", "length_bonus")} \
                    if method == "lm" else {}
                ids = decode_batch(log_probs[rows], lengths[rows], "greedy" if method == "greedy" else "beam",
                                   beam_width, **extra)
                out += ["".join(table.lookup(seq)) for seq in ids]
            refs += [cache.texts[int(batch["index"][r])] for r in rows]
            if plot_dir is None or split != splits[-1]:
                continue
            first = len(refs) - len(rows)  # this batch's rows in refs / greedy
            for k, r in enumerate(rows[: max(0, num_plots - plotted)]):
                fig = example_figure(batch, r, log_probs, lengths, table, refs[first + k], greedy[first + k], split)
                save_figure(fig, plot_dir / f"{split}_{int(batch['index'][r])}.png")
                plotted += 1
        for method, hyps in zip(methods, (greedy, beam, fused)):
            rates = error_rates(refs, hyps)
            report[f"{split}_cer_{method}"], report[f"{split}_wer_{method}"] = rates["cer"], rates["wer"]
        report[f"{split}_utterances"] = len(refs)
        report[f"{split}_examples"] = [{"reference": r, "greedy": g} for r, g in list(zip(refs, greedy))[:3]]
    return report


def evaluate_natural(model, params, cache, eval_config, natural, beam_width: int = 8,
                     fusion: dict | None = None) -> dict:
    """`evaluate` on the natural evaluation set's cache `natural` with the training cache's feature statistics;
    keys `natural_*`."""
    rates = evaluate(model, params, natural, eval_config, splits=("test",), beam_width=beam_width, stats=cache.stats,
                     fusion=fusion)
    return {"natural" + k[len("test"):]: v for k, v in rates.items()}
