"""Copy synthesis by a trained vocoder with inference-time overrides, and its crop-edge check.

    python -m benchmarks.vocoder_copy --vocoder workdir/vocoder [--peak_phase_hz 2000] [--utterances 20]
                                      [--edges] [--out results.json] [--record]

Scores: the experiment's copy synthesis (`evaluate/vocoder_quality.copy_synthesis`: PESQ-WB, STOI, MCD, log-mel
L1, real-time factor) of the first `--utterances` validation utterances of the embedded corpus, with the iSTFT
head's `peak_phase_hz` replaced at inference when given (the trained parameters unchanged).

`--edges`: training shows the generator crops of `segment_frames` (32) frames, whose convolutions see the zero
padding at both ends; a whole utterance's frames mostly see none. For the first 5 of those utterances, the log-mel
L1 of the central 13 frames of a crop of 2h + 1 frames (h = 8, 16, 24, 32), vocoded alone: equal across h for a
generator that does the same inside an utterance as on its training crops, lower at small h for one that relies on
the crop's ends (`centre_l1`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime

import numpy as np

from benchmarks.measure import machine, progress, publish
from mmspeech_jax.host_memory import keep_freed_memory

HALF_WIDTHS = (8, 16, 24, 32)
CENTRE = 6  # frames on each side of the crop's centre that are scored


def centre_l1(vocode, log_mel_of, log_mel, half: int, centre: int = CENTRE) -> float:
    """vocode(log_mel (T, M)) -> audio; log_mel_of(audio) -> (T', M); log_mel (T, M) with T >= 2 half + 1 ->
    mean |log-mel of the vocoded crop - the crop's| over the 2 centre + 1 frames around the centre of the crop of
    2 half + 1 frames taken from the middle of `log_mel`."""
    middle = log_mel.shape[0] // 2
    crop = log_mel[middle - half: middle + half + 1]
    if crop.shape[0] != 2 * half + 1:
        raise ValueError(f"centre_l1: {log_mel.shape[0]} frames, need at least {2 * half + 1}")
    rebuilt = np.asarray(log_mel_of(vocode(crop)))
    return float(np.mean(np.abs(rebuilt[half - centre: half + centre + 1] - crop[half - centre: half + centre + 1])))


def main(argv=None) -> dict:
    """Runs the benchmark; returns {"copy_synthesis": {...}, "edges": {h: L1} or None, "overrides": {...}}."""
    keep_freed_memory()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocoder", required=True, help="a vocoder workdir or export")
    p.add_argument("--peak_phase_hz", type=float, default=None,
                   help="iSTFT head: phase from spectral peaks below this frequency at inference (default: as trained)")
    p.add_argument("--utterances", type=int, default=20, help="the first N validation utterances")
    p.add_argument("--edges", action="store_true", help="also the crop-edge check (module docstring)")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)

    import jax.numpy as jnp

    from mmspeech_jax.audio.features import log_mel_spectrogram
    from mmspeech_jax.data import CorpusConfig
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
    from mmspeech_jax.data.synthetic_corpus import generate_corpus
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.evaluate.vocoder_quality import copy_synthesis
    from mmspeech_jax.models.vocoder import generate
    from mmspeech_jax.vocode import Vocoder

    trained = Vocoder.from_workdir(args.vocoder)
    config, overrides = trained.config, {}
    if args.peak_phase_hz is not None:
        if config.generator != "istft":
            raise ConfigError(f"--peak_phase_hz applies to an iSTFT vocoder; {args.vocoder} is {config.generator}")
        overrides["peak_phase_hz"] = args.peak_phase_hz
        config = dataclasses.replace(config, istft=dataclasses.replace(config.istft, **overrides))
    vocoder = Vocoder(config, trained.params)
    corpus = generate_corpus(CorpusConfig(), progress=False)
    utterances = corpus.split("validation")[: args.utterances]
    recordings = [np.asarray(corpus.audio(u), np.float32) for u in utterances]
    progress(f"copy synthesis of {len(recordings)} utterances")
    scores = copy_synthesis(vocoder, recordings, config.mel)
    edges = None
    if args.edges:
        progress("crop-edge check")
        alone = lambda mel: np.asarray(generate(config, vocoder.params, jnp.asarray(mel)[None]))[0]
        log_mel_of = lambda audio: log_mel_spectrogram(jnp.asarray(audio), config.mel)
        mels = [padded_log_mel_and_energy(r, config.mel)[0] for r in recordings[:5]]
        edges = {h: float(np.mean([centre_l1(alone, log_mel_of, m, h) for m in mels])) for h in HALF_WIDTHS}
    keys = ("pesq_wb", "stoi", "mcd_db", "log_mel_l1", "real_time_factor")
    lines = [f"### Vocoder copy synthesis — {datetime.date.today().isoformat()}", "",
             f"Command: `python -m benchmarks.vocoder_copy --vocoder {args.vocoder} --utterances {args.utterances}"
             + (f" --peak_phase_hz {args.peak_phase_hz:g}" if args.peak_phase_hz is not None else "")
             + (" --edges" if args.edges else "") + "`", f"Machine: {machine()}", "",
             f"Vocoder step {trained.checkpoint_step}; overrides {overrides or 'none'}.", "",
             "| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |",
             "| " + " | ".join(f"{scores[k]:.3f}" for k in keys) + " |"]
    if edges:
        lines += ["", "| crop frames (2h + 1) | " + " | ".join(str(2 * h + 1) for h in edges) + " |",
                  "| --- | " + " | ".join("---" for _ in edges) + " |",
                  "| log-mel L1 of the 13 central frames | " + " | ".join(f"{v:.4f}" for v in edges.values()) + " |"]
    result = {"copy_synthesis": {k: scores[k] for k in keys}, "edges": edges, "overrides": overrides,
              "vocoder": args.vocoder, "step": trained.checkpoint_step}
    publish("\n".join(lines) + "\n", result, args.out, args.record)
    return result


if __name__ == "__main__":
    main()
