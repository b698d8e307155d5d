"""How a recognizer's CER depends on the recording level: the natural evaluation set's waveforms scaled by each gain.

    python -m benchmarks.asr_level --asr workdir/ljspeech_asr [--asr OTHER ...] [--gains -20,-12,-6,-3,0,3,6]
                                   [--utterances N] [--out results.json] [--record]

Each ASR workdir (or export) transcribes the natural set's espeak-ng recordings (sentences no corpus contains) with
every sample multiplied by 10^(gain / 20), through `Transcriber.transcribe` as a user's waveform would go (features
computed from the scaled samples; no clipping, so a boost past full scale is not clipped here), greedy decoding.
The table: one row per workdir, one column per gain, CER.
"""

from __future__ import annotations

import datetime

import numpy as np

from benchmarks.measure import asr_natural_parser, machine, natural_recordings, progress, publish
from mmspeech_jax.host_memory import keep_freed_memory

DEFAULT_GAINS = (-20.0, -12.0, -6.0, -3.0, 0.0, 3.0, 6.0)


def level_cers(transcriber, waveforms: list[tuple[np.ndarray, int]], texts: list[str], gains_db=DEFAULT_GAINS,
               batch_size: int = 16) -> dict[float, float]:
    """{gain in dB: CER (fraction) of `transcriber` on `waveforms` ((float32 (S,), sample rate) each) scaled by
    10^(gain / 20)} against `texts` (`evaluate/asr.error_rates`)."""
    from mmspeech_jax.evaluate.asr import error_rates

    out = {}
    for gain in gains_db:
        scale = np.float32(10.0 ** (gain / 20.0))
        rows = transcriber.transcribe([(w * scale, rate) for w, rate in waveforms], batch_size=batch_size)
        out[float(gain)] = float(error_rates(texts, [r["text"] for r in rows])["cer"])
    return out


def main(argv=None) -> dict:
    """Runs the benchmark; returns {"gains_db", "rows": {workdir: {gain: cer}}, "utterances"}."""
    keep_freed_memory()
    p = asr_natural_parser(__doc__)
    p.add_argument("--gains", default=",".join(f"{g:g}" for g in DEFAULT_GAINS), help="gains in dB, comma-separated")
    args = p.parse_args(argv)
    gains = tuple(float(g) for g in args.gains.split(","))

    from mmspeech_jax.transcribe import Transcriber

    waveforms, texts = natural_recordings(args.utterances)
    rows = {}
    for workdir in args.asr:
        progress(f"{workdir}: {len(texts)} sentences at {len(gains)} gains")
        rows[workdir] = level_cers(Transcriber.from_workdir(workdir), waveforms, texts, gains)
    header = "| ASR workdir | " + " | ".join(f"{g:+g} dB" for g in gains) + " |"
    lines = [f"### ASR CER against the recording level, natural set ({len(texts)} sentences) — "
             f"{datetime.date.today().isoformat()}", "",
             f"Command: `python -m benchmarks.asr_level {' '.join(f'--asr {w}' for w in args.asr)} --gains "
             f"{args.gains}`", f"Machine: {machine()}", "", header,
             "| --- | " + " | ".join("---" for _ in gains) + " |"]
    lines += [f"| {w} | " + " | ".join(f"{100 * r[g]:.1f} %" for g in gains) + " |" for w, r in rows.items()]
    result = {"gains_db": list(gains), "rows": rows, "utterances": len(texts)}
    publish("\n".join(lines) + "\n", result, args.out, args.record)
    return result


if __name__ == "__main__":
    main()
