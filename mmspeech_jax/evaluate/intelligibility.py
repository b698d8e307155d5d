"""The closed loop: synthesize each sentence with a TTS workdir, transcribe it with an ASR workdir, score CER/WER.

`evaluate_tts` reports the error rates of synthesized speech and, for sentences whose ground-truth recording is
known (`ground_truth` maps text to the corpus's log-mel of the real audio), the same rates for that recording, so
the TTS is judged against what the recognizer achieves on natural input, and for the same recording passed through
the synthesizer's vocoder (`ground_truth_vocoded`: its vocoder, Griffin-Lim or neural, on the true mel), which
separates what the vocoder loses from what the acoustic model gets wrong. A sentence the TTS rejects (bad text) is
listed with its one-line error and left out of the rates; it does not stop the others.
"""

from __future__ import annotations

import numpy as np

from mmspeech_jax.errors import MMSpeechError
from mmspeech_jax.evaluate.asr import asr_normalize, error_rates


def evaluate_tts(synthesizer, transcriber, texts: list[str], ground_truth: dict[str, np.ndarray] | None = None,
                 progress=None) -> dict:
    """Returns {"synthesized": {cer, wer, utterances}, "ground_truth": {...} or None, "ground_truth_vocoded": {...}
    or None, "lines": [...]}."""
    ground_truth = {asr_normalize(k): v for k, v in (ground_truth or {}).items()}
    lines, refs, hyps, gt_refs, gt_hyps, vocoded_hyps = [], [], [], [], [], []
    transcribe_audio = lambda audio, rate: transcriber.transcribe_features([transcriber.mel_from_audio(audio, rate)])[0]
    for text in texts if progress is None else progress(texts):
        entry = {"text": text}
        try:
            audio, rate = synthesizer.synthesize(text)
        except MMSpeechError as exc:
            entry["error"] = str(exc)
            lines.append(entry)
            continue
        entry["transcript"] = transcribe_audio(audio, rate)
        refs.append(text)
        hyps.append(entry["transcript"])
        reference_mel = ground_truth.get(asr_normalize(text))
        if reference_mel is not None:
            entry["ground_truth_transcript"] = transcriber.transcribe_features([reference_mel])[0]
            gt_refs.append(text)
            gt_hyps.append(entry["ground_truth_transcript"])
            entry["ground_truth_vocoded_transcript"] = transcribe_audio(*synthesizer.vocode(np.asarray(reference_mel)))
            vocoded_hyps.append(entry["ground_truth_vocoded_transcript"])
        lines.append(entry)
    if not refs:
        raise MMSpeechError("no sentence could be synthesized; nothing to score")
    return {"synthesized": error_rates(refs, hyps),
            "ground_truth": error_rates(gt_refs, gt_hyps) if gt_refs else None,
            "ground_truth_vocoded": error_rates(gt_refs, vocoded_hyps) if gt_refs else None,
            "lines": lines}
