"""The natural-set closed loop of a TTS workdir through several vocoders: which share of the TTS's intelligibility
gap is the vocoder's.

    python -m benchmarks.closed_loop --tts workdir/ljspeech_tts --asr workdir/ljspeech_asr \
        --vocoder griffin-lim --vocoder workdir/vocoder --vocoder workdir/vocoder_ft [--record]
    python -m benchmarks.closed_loop --tts ... --asr ... --compute_dtype float32 --compute_dtype bfloat16

For each vocoder ("griffin-lim" or a vocoder workdir), `experiments.ljspeech_tts.intelligibility` on the 219
sentences of the natural evaluation set: the ASR's CER on the synthesized speech, on the true recordings and on the
true mels through the same vocoder, the ratio, and the loop's wall time; with several `--compute_dtype`, once per
dtype (both models compute in it: what bfloat16 inference costs in intelligibility). Prints a table (and appends it to
benchmarks/RESULTS.md with --record).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from benchmarks.measure import judged_tts_parser, machine, publish
from mmspeech_jax.host_memory import keep_freed_memory


def main(argv=None) -> dict:
    from experiments.ljspeech_tts import intelligibility
    from mmspeech_jax.data import natural_eval_feature_cache

    p = judged_tts_parser(__doc__)
    p.add_argument("--vocoder", action="append", default=[], help="griffin-lim or a vocoder workdir (repeatable)")
    p.add_argument("--compute_dtype", action="append", default=[], choices=["float32", "bfloat16"],
                   help="both models' arithmetic (repeatable; default float32)")
    args = p.parse_args(argv)
    natural = natural_eval_feature_cache(args.utterances)
    rows = natural.indices("test")
    results = {}
    dtypes = args.compute_dtype or ["float32"]
    for vocoder in args.vocoder or ["griffin-lim"]:
        for dtype in dtypes:
            started = time.perf_counter()
            result = intelligibility(Path(args.tts), Path(args.asr), natural, rows,
                                     None if vocoder == "griffin-lim" else vocoder, compute_dtype=dtype)
            name = vocoder if len(dtypes) == 1 else f"{vocoder}, {dtype}"
            results[name] = {**result, "seconds": time.perf_counter() - started}
    command = "python -m benchmarks.closed_loop --tts " + args.tts + " --asr " + args.asr + "".join(
        f" --vocoder {v}" for v in args.vocoder) + "".join(f" --compute_dtype {d}" for d in args.compute_dtype)
    text = (f"### Natural-set closed loop by vocoder ({datetime.date.today().isoformat()})\n\nCommand: `{command}`\n"
            f"Machine: {machine()}\n\n| vocoder | synthesized CER | true recordings CER | cer_ratio | true mels "
            f"through the vocoder, CER | loop wall time |\n| --- | --- | --- | --- | --- | --- |\n")
    for vocoder, r in results.items():
        truth, vocoded = r["ground_truth"] or {}, r["ground_truth_vocoded"] or {}
        ratio = f"{r['cer_ratio']:.2f}" if r["cer_ratio"] is not None else "-"
        text += (f"| {vocoder} | {100 * r['synthesized']['cer']:.1f} % | {100 * truth.get('cer', float('nan')):.1f} % "
                 f"| {ratio} | {100 * vocoded.get('cer', float('nan')):.1f} % | {r['seconds']:.0f} s |\n")
    publish(text, results, args.out, args.record)
    return results


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
