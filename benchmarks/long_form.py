"""Long recordings through an ASR workdir: the natural evaluation set's recordings joined into long ones, transcribed
in windows of several lengths (`long_form.py`), against each sentence transcribed alone.

    python -m benchmarks.long_form --asr workdir/ljspeech_asr [--minutes 1,12] [--windows 10/2,20/4,30/4,60/4]
        [--utterances 219] [--record] [--out results.json]

The first `--utterances` sentences of the natural evaluation set (hand-written, never trained on; espeak-ng en-us),
in order, are joined with `--gap` seconds of silence into recordings of at most `--minutes` each (one row block per
value). Each window setting CHUNK/CONTEXT (seconds) transcribes every recording with `Transcriber.transcribe_many`,
greedy; "alone" transcribes each sentence's own recording; a setting whose chunk is 60 s runs recordings of up to
60 s in one pass (the whole-recording baseline) and longer ones in 60 s windows. CER and WER of the joined text
(`evaluate.asr.error_rates`, one recording = one reference), and the seconds of a second pass (the first compiles).
Prints a markdown table (and appends it to benchmarks/RESULTS.md with --record).
"""

from __future__ import annotations

import argparse
import datetime
import time

import numpy as np

from benchmarks.measure import machine, publish
from mmspeech_jax.host_memory import keep_freed_memory


def joined_recordings(corpus, utterances, minutes: float, gap_seconds: float):
    """[(waveform (S,) float32, [the utterances in it])]: consecutive utterances joined with `gap_seconds` of silence,
    each recording at most `minutes` long (a longer single utterance stands alone)."""
    rate = utterances[0].sample_rate
    gap = np.zeros(int(gap_seconds * rate), np.float32)
    recordings, audio, members = [], [], []
    for u in utterances:
        wave = corpus.audio(u)
        if audio and sum(a.size for a in audio) + gap.size + wave.size > minutes * 60 * rate:
            recordings.append((np.concatenate(audio), members))
            audio, members = [], []
        audio += [gap, wave] if audio else [wave]
        members.append(u)
    if audio:
        recordings.append((np.concatenate(audio), members))
    return recordings


def main(argv=None) -> dict:
    from mmspeech_jax.data.synthetic_corpus import generate_corpus, natural_eval_config
    from mmspeech_jax.evaluate.asr import error_rates
    from mmspeech_jax.transcribe import Transcriber

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr", required=True, help="an ASR workdir or its export")
    p.add_argument("--utterances", type=int, default=None, help="natural-set sentences (default all)")
    p.add_argument("--minutes", default="1,12", help="longest recording, comma-separated values (minutes)")
    p.add_argument("--windows", default="10/2,20/4,30/4,60/4", help="CHUNK/CONTEXT seconds, comma-separated")
    p.add_argument("--gap", type=float, default=0.4, help="seconds of silence between joined sentences")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--out", help="also write the results as JSON here")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    corpus = generate_corpus(natural_eval_config(num_utterances=args.utterances), progress=False)
    utterances = corpus.split("test")
    rate = utterances[0].sample_rate
    asr = Transcriber.from_workdir(args.asr)
    settings = [tuple(float(x) for x in w.split("/")) for w in args.windows.split(",")]

    def timed(mels, chunk, context):
        asr.chunk_seconds, asr.context_seconds = chunk, context
        asr.transcribe_many(mels, args.batch_size)  # compiles
        started = time.perf_counter()
        rows = asr.transcribe_many(mels, args.batch_size)
        return [r["text"] for r in rows], time.perf_counter() - started

    asr.shape_cost = 0  # least padding: the timed second pass reuses the first pass's shapes
    results = {"blocks": []}
    alone_mels = [asr.mel_from_audio(corpus.audio(u), rate) for u in utterances]
    alone, seconds = timed(alone_mels, 60.0, 4.0)
    hypothesis_of = dict(zip([u.id for u in utterances], alone))
    for minutes in (float(m) for m in args.minutes.split(",")):
        recordings = joined_recordings(corpus, utterances, minutes, args.gap)
        mels = [asr.mel_from_audio(wave, rate) for wave, _ in recordings]
        references = [" ".join(u.text for u in members) for _, members in recordings]
        audio_seconds = sum(wave.size for wave, _ in recordings) / rate
        joined = [" ".join(hypothesis_of[u.id] for u in members) for _, members in recordings]
        block = {"minutes": minutes, "recordings": len(recordings), "audio_seconds": audio_seconds,
                 "longest_seconds": max(m.shape[0] for m in mels) * asr.mel_config.hop_samples / rate,
                 "alone": {**error_rates(references, joined), "seconds": seconds}, "windows": {}}
        for chunk, context in settings:
            texts, spent = timed(mels, chunk, context)
            block["windows"][f"{chunk:g}/{context:g}"] = {**error_rates(references, texts), "seconds": spent}
        results["blocks"].append(block)
    text = (f"### Long-form transcription ({datetime.date.today().isoformat()})\n\nCommand: `python -m "
            f"benchmarks.long_form --asr {args.asr} --minutes {args.minutes} --windows {args.windows}"
            f"{'' if args.utterances is None else f' --utterances {args.utterances}'}`\n"
            f"Machine: {machine()}\n\n| recordings | window / context (s) | CER | WER | seconds (second pass) |\n"
            f"| --- | --- | --- | --- | --- |\n")
    for block in results["blocks"]:
        name = (f"{block['recordings']} of at most {block['minutes']:g} min ({block['audio_seconds'] / 60:.1f} min "
                f"in all, longest {block['longest_seconds']:.0f} s)")
        text += (f"| {name} | each sentence alone | {100 * block['alone']['cer']:.2f} % | "
                 f"{100 * block['alone']['wer']:.2f} % | {block['alone']['seconds']:.1f} s |\n")
        for setting, r in block["windows"].items():
            text += f"| {name} | {setting} | {100 * r['cer']:.2f} % | {100 * r['wer']:.2f} % | {r['seconds']:.1f} s |\n"
    publish(text, results, args.out, args.record)
    return results


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
