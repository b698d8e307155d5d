"""The closed loop: synthesize each sentence with a TTS workdir, transcribe it with an ASR workdir, score CER/WER.

`evaluate_tts` reports the error rates of synthesized speech and, for sentences whose ground-truth recording is
known (`ground_truth` maps text to the corpus's log-mel of the real audio), the same rates for that recording, so
the TTS is judged against what the recognizer achieves on natural input, and for the same recording passed through
the synthesizer's vocoder (`ground_truth_vocoded`: its vocoder, Griffin-Lim or neural, on the true mel), which
separates what the vocoder loses from what the acoustic model gets wrong. A sentence the TTS rejects (bad text) is
listed with its one-line error and left out of the rates; it does not stop the others.

The recognizer hears the audio as it is: `as_recorded` turns off the transcriber's silencing of pauses
(`Transcriber.pause_seconds`, on by default since 2026-12-07), so letters it writes into a vocoder's noise between
words count against the synthesis, as in every TTS CER recorded before that date.
"""

from __future__ import annotations

import copy

import numpy as np

from mmspeech_jax.errors import MMSpeechError
from mmspeech_jax.evaluate.asr import asr_normalize, error_rates


def as_recorded(transcriber):
    """A shallow copy of a `transcribe.Transcriber` (same parameters and compiled functions) whose `pause_seconds` is
    0: no pause silenced, long recordings in overlapping windows. The caller's transcriber is left as it is."""
    raw = copy.copy(transcriber)
    raw.pause_seconds = 0.0
    return raw


def evaluate_tts(synthesizer, transcriber, texts: list[str], ground_truth: dict[str, np.ndarray] | None = None,
                 progress=None, batch_size: int = 8) -> dict:
    """Returns {"synthesized": {cer, wer, utterances}, "ground_truth": {...} or None, "ground_truth_vocoded": {...}
    or None, "lines": [{"text", "transcript" or "error", ...}] in the order of `texts`}.

    The texts are synthesized `batch_size` at a time (`synthesizer.synthesize_batch`); when one of them fails (a
    text the tokenizer rejects, or a length past the synthesis ladder), each text is synthesized alone so that only
    the failing ones are left out (`progress`, e.g. tqdm, wraps that per-text loop). Audio is transcribed
    `batch_size` at a time, in order of length, through `transcriber.transcribe`, pauses not silenced
    (`as_recorded`)."""
    transcriber = as_recorded(transcriber)
    ground_truth = {asr_normalize(k): v for k, v in (ground_truth or {}).items()}
    lines = [{"text": text} for text in texts]
    try:
        outputs = [(r["audio"], r["sample_rate"]) for r in synthesizer.synthesize_batch(list(texts), batch_size)]
    except MMSpeechError:
        outputs = []
        for line in lines if progress is None else progress(lines):
            try:
                outputs.append(synthesizer.synthesize(line["text"]))
            except MMSpeechError as exc:
                line["error"] = str(exc)
                outputs.append(None)
    spoken = [(line, out) for line, out in zip(lines, outputs) if out is not None]
    if not spoken:
        raise MMSpeechError("no sentence could be synthesized; nothing to score")
    for (line, _), row in zip(spoken, _transcribe(transcriber, [out for _, out in spoken], batch_size)):
        line["transcript"] = row
    known = [(line, ground_truth[key]) for line, _ in spoken
             if (key := asr_normalize(line["text"])) in ground_truth]
    if known:
        mels = [np.asarray(mel) for _, mel in known]
        truth = [row for start in range(0, len(mels), batch_size)
                 for row in transcriber.transcribe_features(mels[start:start + batch_size])]
        vocoded = _transcribe(transcriber, [synthesizer.vocode(mel) for mel in mels], batch_size)
        for (line, _), heard, heard_vocoded in zip(known, truth, vocoded):
            line["ground_truth_transcript"], line["ground_truth_vocoded_transcript"] = heard, heard_vocoded
    refs = [line["text"] for line, _ in spoken]
    gt_refs = [line["text"] for line, _ in known]
    return {"synthesized": error_rates(refs, [line["transcript"] for line, _ in spoken]),
            "ground_truth": error_rates(gt_refs, [line["ground_truth_transcript"] for line, _ in known])
            if known else None,
            "ground_truth_vocoded": error_rates(gt_refs, [line["ground_truth_vocoded_transcript"] for line, _ in known])
            if known else None,
            "lines": lines}


def _transcribe(transcriber, audios: list[tuple[np.ndarray, int]], batch_size: int) -> list[str]:
    """(waveform, sample_rate) pairs -> transcripts in order, run `batch_size` at a time in order of length (the
    batches pad to their longest)."""
    order = sorted(range(len(audios)), key=lambda k: len(audios[k][0]))
    heard = transcriber.transcribe([audios[k] for k in order], batch_size=batch_size)
    out = [""] * len(audios)
    for k, row in zip(order, heard):
        out[k] = row["text"]
    return out
