"""Long recordings through an ASR workdir: the natural evaluation set's recordings joined into long ones, transcribed
in windows of several lengths (`long_form.py`), against each sentence transcribed alone.

    python -m benchmarks.long_form --asr workdir/ljspeech_asr [--minutes 1,12] [--windows 10/2/0.2,10/2/0,20/4/0]
        [--utterances 219] [--gap 0.4] [--record] [--out results.json]

The first `--utterances` sentences of the natural evaluation set (hand-written, never trained on; espeak-ng en-us),
in order, are joined with `--gap` seconds of silence into recordings of at most `--minutes` each (one row block per
value). With `--lead_samples N`, N zero samples go before every recording and each sentence's own (moving the
windows and the frame grid against the speech); with `--snr_db`, white noise at that level below the sentences' mean
power is added to every recording (and to each sentence's own).

Each window setting CHUNK/CONTEXT/PAUSE (seconds; PAUSE 0: no pause is cut in or silenced, `long_form.py`)
transcribes every recording with `Transcriber.transcribe_many`, greedy; a setting whose chunk is 60 s runs
recordings of up to 60 s in one pass (the whole-recording baseline) and longer ones in 60 s windows. "alone, pause P"
transcribes each sentence's own recording (its pauses of P s silenced, if any), for each P of the settings. CER and
WER of the joined text (`evaluate.asr.error_rates`, one recording = one reference), and the seconds of a second pass
(the first compiles). Prints a markdown table (and appends it to benchmarks/RESULTS.md with --record).
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
    p.add_argument("--windows", default="10/2/0.2,10/2/0,20/4/0.2,20/4/0,60/4/0",
                   help="CHUNK/CONTEXT/PAUSE seconds, comma-separated")
    p.add_argument("--gap", type=float, default=0.4, help="seconds of silence between joined sentences")
    p.add_argument("--snr_db", type=float, default=None, help="add white noise this many dB below the speech")
    p.add_argument("--lead_samples", type=int, default=0, help="zero samples before every recording")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--out", help="also write the results as JSON here")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    corpus = generate_corpus(natural_eval_config(num_utterances=args.utterances), progress=False)
    utterances = corpus.split("test")
    rate = utterances[0].sample_rate
    asr = Transcriber.from_workdir(args.asr)
    settings = [tuple(float(x) for x in w.split("/")) for w in args.windows.split(",")]
    if args.lead_samples < 0:
        p.error(f"--lead_samples must be >= 0, got {args.lead_samples}")
    if any(len(s) != 3 for s in settings):
        p.error(f"--windows: expected CHUNK/CONTEXT/PAUSE settings, got {args.windows!r}")

    def timed(mels, chunk, context, pause):
        asr.chunk_seconds, asr.context_seconds, asr.pause_seconds = chunk, context, pause
        asr.transcribe_many(mels, args.batch_size)  # compiles
        started = time.perf_counter()
        rows = asr.transcribe_many(mels, args.batch_size)
        return [r["text"] for r in rows], time.perf_counter() - started

    asr.shape_cost = 0  # least padding: the timed second pass reuses the first pass's shapes
    rng = np.random.default_rng(0)
    sigma = 0.0 if args.snr_db is None else (
        np.sqrt(np.mean(np.concatenate([corpus.audio(u) for u in utterances]) ** 2)) * 10 ** (-args.snr_db / 20))

    def noisy(wave):
        wave = np.concatenate([np.zeros(args.lead_samples, np.float32), wave])
        return wave if sigma == 0 else (wave + rng.normal(0, sigma, wave.size)).astype(np.float32)

    results = {"blocks": [], "snr_db": args.snr_db, "lead_samples": args.lead_samples}
    alone_mels = [asr.mel_from_audio(noisy(corpus.audio(u)), rate) for u in utterances]
    alone = {}  # pause -> ({utterance id: hypothesis}, seconds)
    for pause in sorted({pause for _, _, pause in settings}):
        texts, seconds = timed(alone_mels, 60.0, 4.0, pause)
        alone[pause] = dict(zip([u.id for u in utterances], texts)), seconds
    for minutes in (float(m) for m in args.minutes.split(",")):
        recordings = joined_recordings(corpus, utterances, minutes, args.gap)
        mels = [asr.mel_from_audio(noisy(wave), rate) for wave, _ in recordings]
        references = [" ".join(u.text for u in members) for _, members in recordings]
        audio_seconds = sum(wave.size for wave, _ in recordings) / rate
        block = {"minutes": minutes, "recordings": len(recordings), "audio_seconds": audio_seconds,
                 "longest_seconds": max(m.shape[0] for m in mels) * asr.mel_config.hop_samples / rate,
                 "alone": {}, "windows": {}}
        for pause, (hypothesis_of, seconds) in alone.items():
            joined = [" ".join(hypothesis_of[u.id] for u in members) for _, members in recordings]
            block["alone"][f"{pause:g}"] = {**error_rates(references, joined), "seconds": seconds}
        for chunk, context, pause in settings:
            texts, spent = timed(mels, chunk, context, pause)
            block["windows"][f"{chunk:g}/{context:g}/{pause:g}"] = {**error_rates(references, texts), "seconds": spent}
        results["blocks"].append(block)
    text = (f"### Long-form transcription ({datetime.date.today().isoformat()})\n\nCommand: `python -m "
            f"benchmarks.long_form --asr {args.asr} --minutes {args.minutes} --windows {args.windows}"
            f"{'' if args.utterances is None else f' --utterances {args.utterances}'}"
            f"{'' if args.snr_db is None else f' --snr_db {args.snr_db:g}'}"
            f"{f' --lead_samples {args.lead_samples}' if args.lead_samples else ''}`\n"
            f"Machine: {machine()}\n\n| recordings | window / context (s) | CER | WER | seconds (second pass) |\n"
            f"| --- | --- | --- | --- | --- |\n")
    for block in results["blocks"]:
        name = (f"{block['recordings']} of at most {block['minutes']:g} min ({block['audio_seconds'] / 60:.1f} min "
                f"in all, longest {block['longest_seconds']:.0f} s)")
        for pause, r in block["alone"].items():
            text += (f"| {name} | each sentence alone, pause {pause} | {100 * r['cer']:.2f} % | "
                     f"{100 * r['wer']:.2f} % | {r['seconds']:.1f} s |\n")
        for setting, r in block["windows"].items():
            text += f"| {name} | {setting} | {100 * r['cer']:.2f} % | {100 * r['wer']:.2f} % | {r['seconds']:.1f} s |\n"
    publish(text, results, args.out, args.record)
    return results


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
