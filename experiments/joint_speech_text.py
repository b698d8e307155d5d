"""One model for both directions, in the low-resource setting: labels for 10 % of the training utterances, all
training audio unpaired, a large unpaired text set. Joint pretraining against both single-task baselines.

    python -m experiments.joint_speech_text                          # base preset, embedded corpus, ~45 min on 2 cores
    python -m experiments.joint_speech_text --preset tiny --pretrain_steps 6 --steps 4 --workdir /tmp/joint
    python -m experiments.joint_speech_text --judge_asr workdir/ljspeech_asr     # + TTS intelligibility

Stages (each its own workdir under --workdir, resumable, with config.json task "joint" that `mmspeech transcribe`
and `mmspeech synthesize` read; the same `models/joint_speech_text.py` architecture in every row):
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
from experiments.flags import (WHOLE_SPLIT, add_data_args, add_trainer_args, load_data, mesh_from_flag,
                               parse_checked, run_command, trainer_config)
from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.data import PipelineConfig, make_batch_iterator, natural_eval_feature_cache
from mmspeech_jax.data.interleaved_batches import InterleavedBatches
from mmspeech_jax.data.labelled_subset import labelled_subset
from mmspeech_jax.data.text_batches import TextBatches
from mmspeech_jax.data.unpaired_text import encode_sentences_with, natural_sentences_by_split
from mmspeech_jax.evaluate.asr import error_rates
from mmspeech_jax.models import joint_speech_text as joint
from mmspeech_jax.models.ctc_asr import CTCASR
from mmspeech_jax.overrides import apply_overrides
from mmspeech_jax.train.finetune import STRATEGIES, count_parameters, masked_optimizer, merge_pretrained, trainable_mask
from mmspeech_jax.train.init import init_params
from mmspeech_jax.train.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from mmspeech_jax.train.trainer import fit
from mmspeech_jax.workdir import atomic_write_text, strict_json, write_run_config

# row: (initial parameters, fine-tuning mode)
ROWS = {"scratch_asr": (None, "asr"), "scratch_tts": (None, "tts"), "bestrq_asr": ("bestrq", "asr"),
        "joint_asr": ("joint", "asr"), "joint_tts": ("joint", "tts"), "joint_asr_tts": ("joint", "asr_tts")}
TEXT_LENGTHS = (32, 64, 96)  # unpaired text rungs (tokens, two boundaries included)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/joint_speech_text")
    p.add_argument("--preset", default="base", choices=["tiny", "base"])
    add_data_args(p)
    add_trainer_args(p, steps=300, learning_rate=2e-3, eval_every=300)
    p.set_defaults(batch_size=8, num_buckets=2)
    p.add_argument("--pretrain_steps", type=int, default=1200,
                   help="steps of each pretraining (joint: the three streams alternate, one per step)")
    p.add_argument("--pretrain_learning_rate", type=float, default=2e-3)
    p.add_argument("--pretrain_eval_every", type=int, default=300)
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
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parse_checked(p, argv, model_config=lambda a: model_config(a, vocab_size=2))
    unknown = set(args.rows.split(",")) - set(ROWS)
    if unknown:
        p.error(f"unknown rows {sorted(unknown)}; choose from {tuple(ROWS)}")
    if not 0.0 < args.label_fraction <= 1.0:
        p.error("--label_fraction must be in (0, 1]")
    return args


def model_config(args, vocab_size: int, **speech) -> joint.JointConfig:
    """The preset the flags name (speech-side `speech` fields replaced, e.g. adapter_dim), then `--set` overrides
    (dotted over the whole tree: `--set speech.layers=2`, `--set text.decoder_layers=1`)."""
    config = joint.preset(args.preset, vocab_size)
    if speech:
        config = dataclasses.replace(config, speech=dataclasses.replace(config.speech, **speech))
    return apply_overrides(config, args.overrides)


def text_ids(args, cache) -> list[list[int]]:
    """Unpaired text: the first --text_sentences natural train-split sentences, phonemized like the corpus."""
    texts = natural_sentences_by_split(("train",))["train"][: args.text_sentences]
    ids = encode_sentences_with(texts, cache.config["tokenizer"], max_tokens=TEXT_LENGTHS[-1] - 2)
    print(f"unpaired text: {len(ids)} sentences")
    return ids


def text_part(batch: dict) -> dict:
    """A `TextBatches` batch ([0, ids..., 0] rows) -> {"tokens", "token_mask"} without the boundaries."""
    tokens = batch["tokens"][:, 1:]
    return {"tokens": tokens, "token_mask": tokens > 0}


def stage(args, cache, config, workdir: Path, params, mode: str, steps: int, learning_rate: float, streams: dict,
          eval_every: int, mask=None, mesh=None, **record):
    """Trains `params` on `mode`'s objective with the shared trainer: the streams alternate step by step (a paired
    step reads the paired stream alone). Returns (fit result, wall seconds)."""
    model = joint.JointSpeechText(config)
    weights = joint.loss_config(mode, binarization_start=steps // 3)
    lock = write_run_config(workdir, {"task": "joint", "mode": mode, "model": dataclasses.asdict(config),
                                      "args": vars(args), "features": cache.config, "stats": cache.stats, **record},
                            cache.table)
    needed = joint.needs(weights)
    # Each step reads one stream; paired data (both supervised losses and the matching) every other step.
    others = [n for n in needed if n != "paired"]
    order = [m for n in others for m in ("paired", n)] if "paired" in needed and others else list(needed)
    schedule = tuple((n,) for n in order)
    batches = InterleavedBatches({n: streams[n] for n in needed}, schedule)
    # A long warm-up: at 2e-3 with a 10 % warm-up the CTC head stayed at the blank plateau for 200+ steps.
    optimizer = OptimizerConfig(learning_rate=learning_rate, warmup_steps=min(200, steps // 3), total_steps=steps)
    tx = make_optimizer(optimizer) if mask is None else masked_optimizer(make_optimizer(optimizer), mask)
    prepare = lambda parts: joint.prepare_joint_batch(
        {k: text_part(v) if k == "text" else v for k, v in parts.items()}, config, cache.stats)
    eval_config = PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets, num_epochs=1,
                                 shuffle=False)
    eval_parts = tuple(n for n in needed if n != "text")  # validation: the paired and speech terms

    def eval_batches():
        for b in make_batch_iterator(cache, "validation", eval_config, verbose=False):
            yield {n: b for n in eval_parts}

    started = time.perf_counter()
    result = fit(workdir, params, tx, joint.make_joint_loss_fn(model, weights), batches,
                 trainer_config(args, steps=steps, eval_every=eval_every, checkpoint_every=eval_every),
                 prepare=prepare, eval_batches=eval_batches if eval_parts else None, mesh=mesh,
                 learning_rate=learning_rate_schedule(optimizer))
    if lock is not None:
        lock.release()
    return result, time.perf_counter() - started


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


def table(rows: dict, pretraining: dict, args) -> str:
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
        lines += ["", f"The judge ({args.judge_asr}) on the recordings of the same sentences: test "
                      f"{pct(judged['test_recordings_cer'])}, natural {pct(judged['natural_recordings_cer'])}."]
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    mesh = mesh_from_flag(args.mesh, args.batch_size)
    if args.compilation_cache is None:  # the rows share step shapes: compile each once
        args.compilation_cache = str(Path(args.workdir) / "xla_cache")
    workdir = Path(args.workdir)
    cache = load_data(args)
    labelled = labelled_subset(cache, args.label_fraction, args.seed)
    print(f"labelled subset: {labelled.size} of {cache.indices('train').size} training utterances")
    wanted = args.rows.split(",")
    pipeline = PipelineConfig(batch_size=args.batch_size, num_buckets=args.num_buckets, num_epochs=None,
                              seed=args.seed)
    text = text_ids(args, cache) if any(ROWS[r][0] == "joint" for r in wanted) else [[1]]
    streams = lambda: {"speech": make_batch_iterator(cache, "train", pipeline, verbose=False),
                       "paired": make_batch_iterator(cache, "train", pipeline, positions=labelled, verbose=False),
                       "text": TextBatches(text, args.batch_size, TEXT_LENGTHS, seed=args.seed)}
    config = model_config(args, len(cache.table))
    fresh = initial_params(config, cache, args.seed)
    pretrained, stages = {}, {}
    for source, mode in (("joint", "pretrain"), ("bestrq", "speech_ssl")):
        if any(ROWS[r][0] == source for r in wanted):
            result, wall = stage(args, cache, config, workdir / f"{source}_pretrain", fresh, mode, args.pretrain_steps,
                                 args.pretrain_learning_rate, streams(), args.pretrain_eval_every, mesh=mesh)
            pretrained[source] = jax.device_get(result.state.params)
            stages[f"{source}_pretrain"] = {"steps": int(result.state.step), "wall_seconds": wall,
                                            "compilations": result.compilations,
                                            "curve": validation_curve(workdir / f"{source}_pretrain")}
    natural = natural_eval_feature_cache(args.natural_eval_utterances, progress=not args.no_progress)
    judge = None
    if args.judge_asr:
        from mmspeech_jax.transcribe import Transcriber

        judge = Transcriber.from_workdir(args.judge_asr)
    eval_config = PipelineConfig(batch_size=16, num_buckets=args.num_buckets, num_epochs=1, shuffle=False)
    rows = {}
    for name in wanted:
        source, mode = ROWS[name]
        strategy = "full" if source is None else args.strategy
        extra = {"adapter_dim": args.adapter_dim} if strategy == "adapters" else \
            {"lora_rank": args.lora_rank} if strategy == "lora" else {}
        row_config = model_config(args, len(cache.table), **extra)
        params = fresh if not extra else initial_params(row_config, cache, args.seed)
        if source is not None:
            params = merge_pretrained(params, pretrained[source], prefixes=tuple(params))
        mask = trainable_mask(params, strategy, args.freeze_layers)
        result, wall = stage(args, cache, row_config, workdir / name, params, mode, args.steps, args.learning_rate,
                             streams(), args.eval_every, mask=mask, mesh=mesh, strategy=strategy,
                             labelled_utterances=int(labelled.size))
        row = {"mode": mode, "init": source or "scratch", "strategy": strategy, "steps": int(result.state.step),
               "wall_seconds": wall, "compilations": result.compilations,
               "trainable_params": count_parameters(params, mask)}
        final = result.state.params
        if "asr" in mode:
            row.update(asr_scores(row_config, final, cache, natural, eval_config))
        if "tts" in mode:
            row.update(tts_scores(row_config, final, cache, natural, eval_config, judge, args.intelligibility_sentences))
        rows[name] = row
        print(name, {k: v for k, v in row.items() if isinstance(v, float)})
    pretraining = {"labelled_utterances": int(labelled.size), "train_utterances": int(cache.indices("train").size),
                   "text_sentences": len(text) if text != [[1]] else 0, "stages": stages}
    summary = table(rows, pretraining, args)
    report = {"rows": rows, "pretraining": pretraining, "parameters": count_parameters(fresh), "table": summary}
    atomic_write_text(workdir / "report.json", strict_json(report, indent=1))
    print(summary)
    if args.record:
        from benchmarks.measure import machine, record

        given = sys.argv[1:] if argv is None else argv
        command = "python -m experiments.joint_speech_text " + " ".join(a for a in given if a != "--record")
        record(f"### Joint speech–text model, {100 * args.label_fraction:.0f} % labels — "
               f"{datetime.date.today().isoformat()}\n\nCommand: `{command.strip()}`  \nMachine: {machine()}\n\n"
               f"{summary}\n")
    return report


if __name__ == "__main__":
    run_command(main)
