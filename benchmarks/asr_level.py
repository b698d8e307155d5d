"""How a recognizer's CER depends on the recording level: the natural evaluation set's waveforms scaled by each gain.

    python -m benchmarks.asr_level --asr workdir/ljspeech_asr [--asr OTHER ...] [--gains -20,-12,-6,-3,0,3,6]
                                   [--utterances N] [--out results.json] [--record]

Each ASR workdir (or export) transcribes the natural set's espeak-ng recordings (sentences no corpus contains) with
every sample multiplied by 10^(gain / 20), through `Transcriber.transcribe` as a user's waveform would go (features
computed from the scaled samples; no clipping, so a boost past full scale is not clipped here), greedy decoding.
The table: one row per workdir, one column per gain, CER.
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

from benchmarks.measure import machine, progress, publish
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
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr", action="append", required=True, help="an ASR workdir or export (repeatable)")
    p.add_argument("--gains", default=",".join(f"{g:g}" for g in DEFAULT_GAINS), help="gains in dB, comma-separated")
    p.add_argument("--utterances", type=int, default=None, help="the first N natural sentences (default: all)")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    gains = tuple(float(g) for g in args.gains.split(","))

    from mmspeech_jax.data.synthetic_corpus import generate_corpus, natural_eval_config
    from mmspeech_jax.transcribe import Transcriber

    corpus = generate_corpus(natural_eval_config(num_utterances=args.utterances), progress=False)
    utterances = corpus.utterances
    waveforms = [(corpus.audio(u), u.sample_rate) for u in utterances]
    texts = [u.text for u in utterances]
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
