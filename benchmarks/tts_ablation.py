"""Where FastSpeech2's intelligibility goes: the same sentences decoded from the true prosody and from its own.

    python -m benchmarks.tts_ablation --tts workdir/ljspeech_tts --asr workdir/ljspeech_asr [--utterances N] [--record]

On the natural evaluation set (espeak-ng recordings of sentences no corpus contains; `--split test` takes the
training corpus's test split instead), each sentence's mel is made five ways and handed to the ASR as features
(no vocoder, so nothing here is the vocoder's share):

| row | durations | pitch and energy |
| --- | --- | --- |
| recording | - (the true log-mel) | - |
| teacher-forced | the TTS's aligner on the recording | the recording's, averaged per token |
| aligner durations | the aligner's | predicted |
| predicted durations | predicted | the recording's, averaged over the aligner's durations |
| synthesized | predicted | predicted (what `mmspeech synthesize` makes) |

Each row's ASR CER (greedy) says which predictor costs what; the duration rows add the duration predictor's
error against the aligner: mean absolute error in frames, the share of tokens it gives 0 frames that the aligner
gives at least one, and the ratio of total frames. Token-level variance only (the presets' default).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from benchmarks.measure import judged_tts_parser, machine, publish
from mmspeech_jax.host_memory import keep_freed_memory

ROWS = ("recording", "teacher-forced", "aligner durations", "predicted durations", "synthesized")


def ablation_forward(model, max_frames_factor: int = 2):
    """A jitted (params, batch) -> {row: (mel (B, T', M), frame_mask (B, T'))} for the four model rows of the
    table, plus "aligner" and "predicted" durations (B, N) int32. T' = T for the aligner's durations and
    `max_frames_factor` x T for the predicted ones (frames past it are cut; the mask says so)."""
    import jax

    from mmspeech_jax.models.fastspeech2 import FastSpeech2, variance_targets

    def run(module: FastSpeech2, batch):
        tokens, token_mask, frame_mask = batch["tokens"], batch["token_mask"], batch["frame_mask"]
        t = frame_mask.shape[1]
        h = module.encode(tokens, token_mask)
        _, _, aligner = module.align(tokens, token_mask, batch["mel"], frame_mask, batch["log_prior"])
        pitch, energy = variance_targets(batch, aligner, "token")
        predicted = module.variance_adaptor.predict_durations(h, token_mask)
        out = {"aligner": aligner, "predicted": predicted}
        for row, durations, variance, frames in (
                ("teacher-forced", aligner, (pitch, energy), t),
                ("aligner durations", aligner, (None, None), t),
                ("predicted durations", predicted, (pitch, energy), max_frames_factor * t),
                ("synthesized", predicted, (None, None), max_frames_factor * t)):
            x, mask, _ = module.adapt(h, token_mask, frames, durations=durations, pitch=variance[0],
                                      energy=variance[1])
            out[row] = (module.decode(x, mask)[1], mask)
        return out

    return jax.jit(lambda params, batch: model.apply({"params": params}, batch, method=run))


def duration_errors(aligner: list[np.ndarray], predicted: list[np.ndarray]) -> dict:
    """Per-utterance token durations (N_i,) int, the aligner's and the predictor's -> {"mae_frames": mean |error|
    over all tokens, "dropped": share of tokens with aligner > 0 and prediction 0, "length_ratio": total predicted
    frames / total aligner frames}."""
    a, p = np.concatenate(aligner).astype(np.float64), np.concatenate(predicted).astype(np.float64)
    return {"mae_frames": float(np.abs(a - p).mean()), "dropped": float(((a > 0) & (p == 0)).sum() / max((a > 0).sum(), 1)),
            "length_ratio": float(p.sum() / max(a.sum(), 1.0))}


def ablate(tts_workdir, asr_workdir, cache, rows, batch_size: int = 16) -> dict:
    """The table's rows for the cache rows `rows` of one split: {row: {"cer", "wer", "utterances"}, "durations":
    duration_errors(...), "examples": the first three sentences' transcripts per row}."""
    from mmspeech_jax.data.pipeline import PipelineConfig, make_batch_iterator
    from mmspeech_jax.evaluate.asr import error_rates
    from mmspeech_jax.evaluate.intelligibility import as_recorded
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config, model_inputs
    from mmspeech_jax.transcribe import Transcriber
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    record_ = read_workdir_config(tts_workdir)
    config = FastSpeech2Config.from_dict(record_["model"])
    if config.aligner is None or config.variance_level != "token":
        raise SystemExit("tts_ablation needs a FastSpeech2 with its aligner and token-level variance")
    params, _ = restore_params(Path(tts_workdir))
    forward = ablation_forward(FastSpeech2(config))
    rows = np.sort(np.asarray(rows, np.int64))
    split = cache.splits[int(rows[0])]
    pipeline = PipelineConfig(batch_size=batch_size, num_buckets=4, num_epochs=1, shuffle=False)
    mels = {row: {} for row in ROWS}
    durations = {"aligner": {}, "predicted": {}}
    for batch in make_batch_iterator(cache, split, pipeline, positions=rows, verbose=False, process_index=0,
                                     process_count=1):
        out = forward(params, model_inputs(batch, config))
        for r in np.flatnonzero(batch["example_mask"]):
            i, n, t = int(batch["index"][r]), int(batch["token_lengths"][r]), int(batch["frame_lengths"][r])
            mels["recording"][i] = np.asarray(batch["mel"][r, :t])
            for row in ROWS[1:]:
                mel, mask = out[row]
                mels[row][i] = np.asarray(mel[r, : max(int(np.asarray(mask[r]).sum()), 2)])
            for kind in durations:
                durations[kind][i] = np.asarray(out[kind][r, :n])
    transcriber = as_recorded(Transcriber.from_workdir(asr_workdir))  # pauses not silenced, as recorded before
    order = [int(i) for i in rows]
    texts = [cache.texts[i] for i in order]
    result = {}
    for row in ROWS:
        heard = [h for start in range(0, len(order), batch_size)
                 for h in transcriber.transcribe_features([mels[row][i] for i in order[start:start + batch_size]])]
        result[row] = {**error_rates(texts, heard), "examples": heard[:3]}
    result["durations"] = duration_errors([durations["aligner"][i] for i in order],
                                          [durations["predicted"][i] for i in order])
    result["texts"] = texts[:3]
    return result


def main(argv=None) -> dict:
    from experiments.configs.common import DataConfig
    from experiments.flags import load_data
    from mmspeech_jax.data import natural_eval_feature_cache
    from mmspeech_jax.workdir import read_workdir_config

    p = judged_tts_parser(__doc__)
    p.add_argument("--split", choices=["natural", "test"], default="natural",
                   help="natural: the natural evaluation set; test: the TTS corpus's test split")
    args = p.parse_args(argv)
    tts_record = read_workdir_config(args.tts)
    if args.split == "natural":
        cache = natural_eval_feature_cache(args.utterances)
        cache.stats = tts_record["stats"]  # its own are placeholders: pitch and energy z-scored as in training
        rows = cache.indices("test")
    else:
        cache = load_data(DataConfig(**tts_record["data"]), progress=False)
        rows = cache.indices("test")[: args.utterances]
    result = ablate(args.tts, args.asr, cache, rows)
    command = (f"python -m benchmarks.tts_ablation --tts {args.tts} --asr {args.asr} --split {args.split}"
               + (f" --utterances {args.utterances}" if args.utterances else ""))
    d = result["durations"]
    text = (f"### FastSpeech2 ablation: true against predicted prosody ({datetime.date.today().isoformat()})\n\n"
            f"Command: `{command}`\nMachine: {machine()}\n\n"
            f"| mel given to the ASR ({len(rows)} sentences, {args.split}) | CER | WER |\n| --- | --- | --- |\n"
            + "".join(f"| {row} | {100 * result[row]['cer']:.1f} % | {100 * result[row]['wer']:.1f} % |\n"
                      for row in ROWS)
            + f"\nPredicted durations against the aligner's: MAE {d['mae_frames']:.2f} frames, "
              f"{100 * d['dropped']:.2f} % of tokens dropped (0 frames where the aligner has some), total length "
              f"ratio {d['length_ratio']:.3f}.\n")
    publish(text, result, args.out, args.record)
    return result


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
