"""One model for both directions, in the low-resource setting: labels for 10 % of the training utterances, all
training audio unpaired, a large unpaired text set. Joint pretraining against both single-task baselines.

    python -m experiments.joint_speech_text                          # base preset, embedded corpus, ~40 min on 2 cores
    python -m experiments.joint_speech_text --preset tiny --pretrain_steps 6 --steps 4 --workdir /tmp/joint
    python -m experiments.joint_speech_text --judge_asr workdir/ljspeech_asr     # + TTS intelligibility

Stages (each its own workdir under --workdir, resumable, with config.json task "joint" that `mmspeech transcribe`
and `mmspeech synthesize` read; the same `models/joint_speech_text.py` architecture in every row):
  ctc_warmup/       CTC alone on the labelled 10 %, from fresh parameters: both pretrainings start from it (joint
                    pretraining from fresh parameters sat at the CTC blank plateau for its first ~700 steps)
  joint_pretrain/   BEST-RQ on all training audio + masked tokens on unpaired text + on the labelled 10 %: CTC,
                    FastSpeech2 with its aligner and modality matching (one stream per step: paired, speech,
                    paired, text, ...)
  bestrq_pretrain/  BEST-RQ on the same audio only (today's speech-only path), as many steps
  scratch_asr/ scratch_tts/                       single-task from scratch on the labelled 10 %
  bestrq_asr/                                     BEST-RQ -> ASR fine-tune
  joint_asr/ joint_tts/ joint_asr_tts/            joint pretraining -> ASR, TTS, or one model on l_ASR + l_TTS
Every fine-tune has the same steps, batch and labelled data. Scored on the corpus test split and the natural
evaluation set: ASR CER (greedy), TTS mel L1 (teacher-forced with the aligner's durations, test split) and, with
`--judge_asr` (a trained ASR workdir, e.g. `python -m experiments.ljspeech_asr`), TTS intelligibility: the judge's
CER on Griffin-Lim speech of the first `--intelligibility_sentences` sentences. report.json holds the table, every
row's figures, the pretraining curves (validation terms at each evaluation) and wall times; `--record` appends the
table to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from experiments.asr_recipe import greedy_texts
from experiments.configs.joint_speech_text import (ROWS, JointEvaluationConfig, JointExperimentConfig,
                                                   JointRowsConfig, config)
from experiments.flags import (WHOLE_SPLIT, add_data_args, add_trainer_args, build_mesh, load_data, parse_tree,
                               run_command, shared_parts, trainer_config)
from experiments.wiring import eval_pipeline, fit_tree, write_config, write_report
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.data import PipelineConfig, make_batch_iterator, natural_eval_feature_cache
from mmspeech_jax.data.interleaved_batches import InterleavedBatches
from mmspeech_jax.data.labelled_subset import labelled_subset
from mmspeech_jax.data.text_batches import TextBatches
from mmspeech_jax.data.unpaired_text import encode_sentences_with, natural_sentences_by_split
from mmspeech_jax.evaluate.asr import error_rates
from mmspeech_jax.models import joint_speech_text as joint
from mmspeech_jax.models.ctc_asr import CTCASR
from mmspeech_jax.train.finetune import STRATEGIES, count_parameters, masked_optimizer, merge_pretrained, trainable_mask
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import make_optimizer

TEXT_LENGTHS = (32, 64, 96)  # unpaired text rungs (tokens, two boundaries included)


def parse_args(argv=None):
    """(args, the run's `JointExperimentConfig`): the flags, then the tree they fill with `--set` over it."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/joint_speech_text")
    p.add_argument("--preset", default="base", choices=["tiny", "base"])
    add_data_args(p)
    add_trainer_args(p, steps=240, learning_rate=2e-3, eval_every=240)
    p.set_defaults(batch_size=8, num_buckets=2)
    p.add_argument("--ctc_warmup_steps", type=int, default=None,
                   help="steps of the CTC warm-up both pretrainings start from (default: --steps, whose compiled "
                        "program the ASR rows share; 0: none, the pretrainings start from fresh parameters)")
    p.add_argument("--pretrain_steps", type=int, default=560,
                   help="steps of each pretraining (joint: the three streams alternate, one per step)")
    p.add_argument("--pretrain_learning_rate", type=float, default=2e-3)
    p.add_argument("--pretrain_eval_every", type=int, default=140)
    p.add_argument("--label_fraction", type=float, default=0.1)
    p.add_argument("--text_sentences", type=int, default=30000,
                   help="unpaired text: the first N natural sentences of the corpus's train split (phonemized)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {tuple(ROWS)}")
    p.add_argument("--strategy", default="full", choices=STRATEGIES,
                   help="fine-tuning strategy of the pretrained rows (adapters/LoRA add --adapter_dim/--lora_rank)")
    p.add_argument("--freeze_layers", type=int, default=2)
    p.add_argument("--adapter_dim", type=int, default=32)
    p.add_argument("--lora_rank", type=int, default=8)
    p.add_argument("--judge_asr", default=None, metavar="ASR_WORKDIR",
                   help="a trained ASR workdir that judges the TTS rows' speech (intelligibility columns)")
    p.add_argument("--intelligibility_sentences", type=int, default=40)
    p.add_argument("--natural_eval_utterances", type=int, default=None,
                   help="natural evaluation sentences the ASR rows are scored on (default: all 219)")
    p.add_argument("--validation_utterances", type=int, default=200,
                   help="validation utterances of every stage's evaluations (0: the whole split, 609 by default)")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> JointExperimentConfig:
    """The tree the flags describe (the vocabulary a stand-in until the data loads). Both trainers keep their
    compiled steps in WORKDIR/xla_cache unless --compilation_cache says otherwise: the rows share step shapes."""
    warmup = args.steps if args.ctc_warmup_steps is None else args.ctc_warmup_steps
    tree = config(args.preset, ctc_warmup_steps=warmup, pretrain_steps=args.pretrain_steps,
                  pretrain_learning_rate=args.pretrain_learning_rate,
                  pretrain_eval_every=args.pretrain_eval_every, steps=args.steps, learning_rate=args.learning_rate,
                  eval_every=args.eval_every, batch_size=args.batch_size)
    cache_dir = args.compilation_cache or str(Path(args.workdir) / "xla_cache")
    trainer = lambda **fields: trainer_config(args, compilation_cache_dir=cache_dir, **fields)
    rows = JointRowsConfig(label_fraction=args.label_fraction, text_sentences=args.text_sentences,
                           rows=tuple(args.rows.split(",")), strategy=args.strategy, freeze_layers=args.freeze_layers,
                           adapter_dim=args.adapter_dim, lora_rank=args.lora_rank)
    evaluation = JointEvaluationConfig(args.judge_asr, args.intelligibility_sentences, args.natural_eval_utterances,
                                       args.validation_utterances or None)
    every = dict(eval_every=args.pretrain_eval_every, checkpoint_every=args.pretrain_eval_every)
    parts = {**shared_parts(args), "trainer": trainer(checkpoint_every=args.eval_every)}
    if warmup:
        parts["ctc_warmup_trainer"] = trainer(steps=warmup, eval_every=warmup, checkpoint_every=warmup)
    return dataclasses.replace(tree, **parts, pretrain_trainer=trainer(steps=args.pretrain_steps, **every), rows=rows,
                               evaluation=evaluation)


def with_vocabulary(tree: JointExperimentConfig, vocab_size: int) -> JointExperimentConfig:
    """`tree` with its text side's vocabulary (known once the data's symbol table is)."""
    text = dataclasses.replace(tree.model.text, vocab_size=vocab_size)
    return dataclasses.replace(tree, model=dataclasses.replace(tree.model, text=text))


def with_strategy(tree: JointExperimentConfig, strategy: str) -> JointExperimentConfig:
    """`tree` whose speech side has the adapters or LoRA of `strategy` (the rows' sizes)."""
    extra = {"adapters": {"adapter_dim": tree.rows.adapter_dim}, "lora": {"lora_rank": tree.rows.lora_rank}}
    speech = dataclasses.replace(tree.model.speech, **extra.get(strategy, {}))
    return dataclasses.replace(tree, model=dataclasses.replace(tree.model, speech=speech))


def text_ids(count: int, cache) -> list[list[int]]:
    """Unpaired text: the first `count` natural train-split sentences, phonemized like the corpus."""
    texts = natural_sentences_by_split(("train",))["train"][:count]
    ids = encode_sentences_with(texts, cache.config["tokenizer"], max_tokens=TEXT_LENGTHS[-1] - 2)
    print(f"unpaired text: {len(ids)} sentences")
    return ids


def text_part(batch: dict) -> dict:
    """A `TextBatches` batch ([0, ids..., 0] rows) -> {"tokens", "token_mask"} without the boundaries."""
    tokens = batch["tokens"][:, 1:]
    return {"tokens": tokens, "token_mask": tokens > 0}


def stage(tree: JointExperimentConfig, cache, workdir: Path, params, mode: str, optimizer, trainer, streams: dict,
          validation: np.ndarray, mask=None, mesh=None, **record):
    """Trains `params` on `mode`'s objective with the shared trainer (`optimizer`, `trainer`: the tree's
    pretraining or fine-tuning pair): the streams alternate step by step (a paired step reads the paired stream
    alone), evaluated on the cache rows `validation`. Mode "pretrain" weighs its terms by `tree.pretrain_weights`;
    the others by `joint.loss_config(mode)`, the aligner's binarization loss counting from a third of the steps.
    Returns (fit result, wall seconds)."""
    config = tree.model
    model = joint.JointSpeechText(config)
    weights = tree.pretrain_weights if mode == "pretrain" else \
        joint.loss_config(mode, binarization_start=trainer.steps // 3)
    lock = write_config(workdir, "joint", tree, cache, cache.table, mode=mode, **record)
    needed = joint.needs(weights)
    # Each step reads one stream; paired data (both supervised losses and the matching) every other step.
    others = [n for n in needed if n != "paired"]
    order = [m for n in others for m in ("paired", n)] if "paired" in needed and others else list(needed)
    schedule = tuple((n,) for n in order)
    batches = InterleavedBatches({n: streams[n] for n in needed}, schedule)
    tx = make_optimizer(optimizer) if mask is None else masked_optimizer(make_optimizer(optimizer), mask)
    prepare = lambda parts: joint.prepare_joint_batch(
        {k: text_part(v) if k == "text" else v for k, v in parts.items()}, config, cache.stats)
    eval_config = eval_pipeline(tree.pipeline)
    eval_parts = tuple(n for n in needed if n != "text")  # validation: the paired and speech terms

    def eval_batches():
        for b in make_batch_iterator(cache, "validation", eval_config, positions=validation, verbose=False):
            yield {n: b for n in eval_parts}

    started = time.perf_counter()
    result = fit_tree(workdir, tree, params, joint.make_joint_loss_fn(model, weights), batches, tx=tx,
                      optimizer=optimizer, trainer=trainer, prepare=prepare,
                      eval_batches=eval_batches if eval_parts else None, mesh=mesh)
    if lock is not None:
        lock.release()
    return result, time.perf_counter() - started


def pretraining_stages(tree: JointExperimentConfig) -> list[tuple[str, str | None, str]]:
    """(workdir name, source, mode) of the pretraining stages `tree.rows.rows` need, in order: the CTC warm-up
    (source None; when the tree has one and a pretrained row is wanted), then the joint and BEST-RQ pretrainings."""
    wanted = {ROWS[r][0] for r in tree.rows.rows}
    stages = [("ctc_warmup", None, "asr")] if tree.ctc_warmup_trainer is not None and wanted - {None} else []
    return stages + [(f"{source}_pretrain", source, mode) for source, mode in (("joint", "pretrain"),
                                                                               ("bestrq", "speech_ssl"))
                     if source in wanted]


def pretrain(tree: JointExperimentConfig, fresh, train) -> tuple[dict, dict]:
    """Runs `pretraining_stages(tree)` through `train(name, params, mode, optimizer, trainer, mask) -> (params,
    record)`: the CTC warm-up from `fresh` with the tree's warm-up pair and the full-strategy rows' mask (all
    trainable: the ASR rows' compiled program), then each pretraining from the warm-up's parameters (or `fresh`)
    with the pretraining pair and no mask. Returns ({source: pretrained params}, {stage name: record})."""
    start, pretrained, stages = fresh, {}, {}
    for name, source, mode in pretraining_stages(tree):
        if source is None:
            mask = trainable_mask(fresh, "full", tree.rows.freeze_layers)
            start, stages[name] = train(name, fresh, mode, tree.ctc_warmup_optimizer, tree.ctc_warmup_trainer, mask)
        else:
            pretrained[source], stages[name] = train(name, start, mode, tree.pretrain_optimizer,
                                                     tree.pretrain_trainer, None)
    return pretrained, stages


def validation_curve(workdir: Path) -> list[dict]:
    """The validation lines of a stage's metrics.jsonl: the terms after each evaluation."""
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in lines if r.get("split") == "validation"]


def initial_params(config, cache, seed: int):
    """Fresh parameters of the whole model (every head), from one training batch."""
    model = joint.JointSpeechText(config)
    b = next(make_batch_iterator(cache, "train", PipelineConfig(batch_size=2, num_buckets=1), verbose=False))
    paired = {k.split("/", 1)[1]: v for k, v in joint.prepare_joint_batch({"paired": b}, config, cache.stats).items()}
    params = init_params(model, {"params": jax.random.PRNGKey(seed)}, paired, method=joint.JointSpeechText.initialize)
    return jax.device_get(params)  # host copies: every stage starts from them, and a stage donates its device state


def asr_scores(config, params, cache, natural, eval_config) -> dict:
    """Greedy CER/WER of the row's recognizer on the test split and the natural set."""
    model = CTCASR(config.speech)
    forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
    out = {}
    for name, source, split in (("test", cache, "test"), ("natural", natural, "test")):
        rates = error_rates(*greedy_texts(forward, joint.asr_params(params), source, eval_config, split, cache.stats))
        out[f"{name}_cer"], out[f"{name}_wer"] = rates["cer"], rates["wer"]
    return out


def tts_scores(config, params, cache, natural, eval_config, judge, sentences: int) -> dict:
    """Teacher-forced mel L1 (after the postnet) on the test split and, with a `judge` (Transcriber), its CER on
    Griffin-Lim speech of the first `sentences` test and natural sentences (next to the judge on the test
    sentences' recordings)."""
    model = joint.JointSpeechText(config)
    forward = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False, speech=False)[0]["mel_post"])
    total = count = 0.0
    for b in make_batch_iterator(cache, "test", eval_config, verbose=False, **WHOLE_SPLIT):
        inputs = {k.split("/", 1)[1]: v for k, v in joint.prepare_joint_batch({"paired": b}, config,
                                                                               cache.stats).items()}
        mel = np.asarray(forward(params, inputs))
        mask = b["frame_mask"][..., None] & b["example_mask"][:, None, None]
        total += float(np.sum(np.abs(mel - b["mel"]) * mask))
        count += float(mask.sum()) * b["mel"].shape[-1]
    out = {"test_mel_l1": total / max(count, 1.0)}
    if judge is None:
        return out
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer

    synthesizer = Synthesizer(model, params, cache.table, MelConfig(**cache.config["mel"]), cache.config["tokenizer"])
    rows = cache.indices("test")[:sentences]
    test = evaluate_tts(synthesizer, judge, [cache.texts[int(i)] for i in rows],
                        {cache.texts[int(i)]: cache[int(i)]["mel"] for i in rows})
    nat = evaluate_tts(synthesizer, judge, [natural.texts[int(i)] for i in natural.indices("test")[:sentences]],
                       {natural.texts[int(i)]: natural[int(i)]["mel"] for i in natural.indices("test")[:sentences]})
    return {**out, "test_synthesized_cer": test["synthesized"]["cer"], "test_recordings_cer": test["ground_truth"]["cer"],
            "natural_synthesized_cer": nat["synthesized"]["cer"],
            "natural_recordings_cer": nat["ground_truth"]["cer"]}


def table(rows: dict, pretraining: dict, judge_asr: str | None) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"
    num = lambda v: "—" if v is None else f"{v:.3f}"
    lines = [f"Labelled: {pretraining['labelled_utterances']} of {pretraining['train_utterances']} training utterances; "
             f"unpaired text: {pretraining['text_sentences']} sentences. "
             + " ".join(f"{name}: {p['steps']} steps, {p['wall_seconds']:.0f} s." for name, p in
                        pretraining["stages"].items()), "",
             "| row | steps | wall time | ASR CER test | ASR CER natural | TTS intelligibility test (natural) "
             "| TTS mel L1 test |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        intel = "—" if r.get("test_synthesized_cer") is None else \
            f"{pct(r['test_synthesized_cer'])} ({pct(r['natural_synthesized_cer'])})"
        lines.append(f"| {name} | {r['steps']} | {r['wall_seconds']:.0f} s | {pct(r.get('test_cer'))} | "
                     f"{pct(r.get('natural_cer'))} | {intel} | {num(r.get('test_mel_l1'))} |")
    judged = next((r for r in rows.values() if r.get("test_recordings_cer") is not None), None)
    if judged:
        lines += ["", f"The judge ({judge_asr}) on the recordings of the same sentences: test "
                      f"{pct(judged['test_recordings_cer'])}, natural {pct(judged['natural_recordings_cer'])}."]
    return "\n".join(lines)


def main(argv=None):
    args, tree = parse_args(argv)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)
    workdir = Path(args.workdir)
    cache = load_data(tree.data, tree.trainer.progress)
    tree = with_vocabulary(tree, len(cache.table))
    settings, evaluation, seed, pipeline = tree.rows, tree.evaluation, tree.trainer.seed, tree.pipeline
    labelled = labelled_subset(cache, settings.label_fraction, seed)
    print(f"labelled subset: {labelled.size} of {cache.indices('train').size} training utterances")
    wanted = settings.rows
    text = text_ids(settings.text_sentences, cache) if any(ROWS[r][0] == "joint" for r in wanted) else [[1]]
    streams = lambda: {"speech": make_batch_iterator(cache, "train", pipeline, verbose=False),
                       "paired": make_batch_iterator(cache, "train", pipeline, positions=labelled, verbose=False),
                       "text": TextBatches(text, pipeline.batch_size, TEXT_LENGTHS, seed=seed)}
    validation = cache.indices("validation")[:evaluation.validation_utterances]
    fresh = initial_params(tree.model, cache, seed)

    def train(name, params, mode, optimizer, trainer, mask):
        result, wall = stage(tree, cache, workdir / name, params, mode, optimizer, trainer, streams(), validation,
                             mask=mask, mesh=mesh)
        return jax.device_get(result.state.params), {
            "steps": int(result.state.step), "wall_seconds": wall, "compilations": result.compilations,
            "curve": validation_curve(workdir / name)}

    pretrained, stages = pretrain(tree, fresh, train)
    natural = natural_eval_feature_cache(evaluation.natural_eval_utterances, progress=tree.trainer.progress)
    judge = None
    if evaluation.judge_asr:
        from mmspeech_jax.transcribe import Transcriber

        judge = Transcriber.from_workdir(evaluation.judge_asr)
    eval_config = dataclasses.replace(eval_pipeline(pipeline), batch_size=16)
    rows = {}
    for name in wanted:
        source, mode = ROWS[name]
        strategy = "full" if source is None else settings.strategy
        row_tree = with_strategy(tree, strategy)
        params = fresh if row_tree == tree else initial_params(row_tree.model, cache, seed)
        if source is not None:
            params = merge_pretrained(params, pretrained[source], prefixes=tuple(params))
        mask = trainable_mask(params, strategy, settings.freeze_layers)
        result, wall = stage(row_tree, cache, workdir / name, params, mode, tree.optimizer, tree.trainer, streams(),
                             validation, mask=mask, mesh=mesh, strategy=strategy, labelled_utterances=int(labelled.size))
        row = {"mode": mode, "init": source or "scratch", "strategy": strategy, "steps": int(result.state.step),
               "wall_seconds": wall, "compilations": result.compilations,
               "trainable_params": count_parameters(params, mask)}
        final = result.state.params
        if "asr" in mode:
            row.update(asr_scores(row_tree.model, final, cache, natural, eval_config))
        if "tts" in mode:
            row.update(tts_scores(row_tree.model, final, cache, natural, eval_config, judge,
                                  evaluation.intelligibility_sentences))
        rows[name] = row
        print(name, {k: v for k, v in row.items() if isinstance(v, float)})
    pretraining = {"labelled_utterances": int(labelled.size), "train_utterances": int(cache.indices("train").size),
                   "text_sentences": len(text) if text != [[1]] else 0, "validation_utterances": int(validation.size),
                   "stages": stages}
    summary = table(rows, pretraining, evaluation.judge_asr)
    report = {"rows": rows, "pretraining": pretraining, "parameters": count_parameters(fresh), "table": summary}
    write_report(workdir, report)
    print(summary)
    if args.record:
        from benchmarks.measure import machine, record

        given = sys.argv[1:] if argv is None else argv
        command = "python -m experiments.joint_speech_text " + " ".join(a for a in given if a != "--record")
        record(f"### Joint speech–text model, {100 * settings.label_fraction:.0f} % labels — "
               f"{datetime.date.today().isoformat()}\n\nCommand: `{command.strip()}`  \nMachine: {machine()}\n\n"
               f"{summary}\n")
    return report


if __name__ == "__main__":
    run_command(main)
