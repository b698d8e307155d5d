"""How a recognizer's CER and WER depend on noise under the speech: the natural evaluation set mixed with noise.

    python -m benchmarks.asr_noise --asr workdir/ljspeech_asr [--asr OTHER ...] [--snrs 30,20,15,10,5]
                                   [--noises white,pink,babble] [--utterances N] [--out results.json] [--record]

Each ASR workdir (or export) transcribes the natural set's espeak-ng recordings (sentences no corpus contains) clean
and with each noise added to the samples at each signal-to-noise ratio (the sentence's mean power over the noise's,
per sentence), through `Transcriber.transcribe` as a user's recording would go (greedy decoding, pauses silenced as
by default). Noises: "white" and "pink" (`audio/noise_augment.colored_noise`, slopes 0 and 1, a seed of their own, so
not the training bank's draws) and "babble", which no training sees: the sum of four other natural sentences (the
next ones in the set, looped to the length). The table: one row per workdir and noise, CER / WER per column.
"""

from __future__ import annotations

import datetime

import numpy as np

from benchmarks.measure import asr_natural_parser, machine, natural_recordings, progress, publish
from mmspeech_jax.host_memory import keep_freed_memory

DEFAULT_SNRS = (30.0, 20.0, 15.0, 10.0, 5.0)
NOISES = ("white", "pink", "babble")
BABBLE_TALKERS = 4


def noise_for(kind: str, index: int, waveforms: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(len(waveforms[index]),) float64 unit-power noise of `kind` for sentence `index`: colored noise, or the sum of
    the BABBLE_TALKERS next sentences (cyclically), each looped to the length."""
    from mmspeech_jax.audio.noise_augment import colored_noise

    length = len(waveforms[index])
    if kind in ("white", "pink"):
        return colored_noise(rng, length, 0.0 if kind == "white" else 1.0)
    if kind != "babble":
        raise ValueError(f"unknown noise {kind!r}; choose from {', '.join(NOISES)}")
    talkers = [waveforms[(index + k) % len(waveforms)].astype(np.float64) for k in range(1, BABBLE_TALKERS + 1)]
    babble = sum(np.resize(t, length) for t in talkers)
    return babble / np.sqrt(np.mean(babble ** 2))


def mixed(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """float32 speech + noise scaled so that mean(speech^2) / mean(scaled noise^2) = 10^(snr_db / 10)."""
    speech = speech.astype(np.float64)
    scale = np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2) * 10.0 ** (-snr_db / 10.0))
    return (speech + scale * noise).astype(np.float32)


def noise_rates(transcriber, waveforms: list[tuple[np.ndarray, int]], texts: list[str], noises=NOISES,
                snrs_db=DEFAULT_SNRS, seed: int = 1234, batch_size: int = 16) -> dict:
    """{"clean": {"cer", "wer"}, noise: {snr: {"cer", "wer"}}} (fractions, `evaluate/asr.error_rates`) of
    `transcriber` on `waveforms` ((float32 (S,), sample rate) each) clean and mixed with each noise at each SNR."""
    from mmspeech_jax.evaluate.asr import error_rates

    def rates(items):
        rows = transcriber.transcribe(items, batch_size=batch_size)
        got = error_rates(texts, [r["text"] for r in rows])
        return {"cer": float(got["cer"]), "wer": float(got["wer"])}

    samples = [w for w, _ in waveforms]
    out = {"clean": rates(waveforms)}
    for kind in noises:
        rng = np.random.default_rng(seed)
        noise = [noise_for(kind, i, samples, rng) for i in range(len(samples))]
        out[kind] = {float(snr): rates([(mixed(w, n, snr), rate) for (w, rate), n in zip(waveforms, noise)])
                     for snr in snrs_db}
    return out


def main(argv=None) -> dict:
    """Runs the benchmark; returns {"snrs_db", "noises", "rows": {workdir: noise_rates(...)}, "utterances"}."""
    keep_freed_memory()
    p = asr_natural_parser(__doc__)
    p.add_argument("--snrs", default=",".join(f"{s:g}" for s in DEFAULT_SNRS), help="SNRs in dB, comma-separated")
    p.add_argument("--noises", default=",".join(NOISES), help=f"comma-separated, of {', '.join(NOISES)}")
    args = p.parse_args(argv)
    snrs = tuple(float(s) for s in args.snrs.split(","))
    noises = tuple(args.noises.split(","))
    unknown = [n for n in noises if n not in NOISES]
    if unknown:
        p.error(f"unknown noise {unknown[0]!r}; choose from {', '.join(NOISES)}")

    from mmspeech_jax.transcribe import Transcriber

    waveforms, texts = natural_recordings(args.utterances)
    rows = {}
    for workdir in args.asr:
        progress(f"{workdir}: {len(texts)} sentences, clean and {len(noises)} noises at {len(snrs)} SNRs")
        rows[workdir] = noise_rates(Transcriber.from_workdir(workdir), waveforms, texts, noises, snrs)
    pct = lambda r: f"{100 * r['cer']:.1f} / {100 * r['wer']:.1f}"
    lines = [f"### ASR CER / WER (%) against noise under the speech, natural set ({len(texts)} sentences) — "
             f"{datetime.date.today().isoformat()}", "",
             f"Command: `python -m benchmarks.asr_noise {' '.join(f'--asr {w}' for w in args.asr)} --snrs "
             f"{args.snrs} --noises {args.noises}`", f"Machine: {machine()}", "",
             "| ASR workdir | noise | clean | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in snrs) + " |"]
    for workdir, r in rows.items():
        lines += [f"| {workdir} | {kind} | {pct(r['clean'])} | " + " | ".join(pct(r[kind][s]) for s in snrs) + " |"
                  for kind in noises]
    result = {"snrs_db": list(snrs), "noises": list(noises), "rows": rows, "utterances": len(texts)}
    publish("\n".join(lines) + "\n", result, args.out, args.record)
    return result


if __name__ == "__main__":
    main()
