"""Copy-synthesis quality of a vocoder: the true mel of a recording -> waveform, compared with the recording.

  * PESQ, wide band (ITU-T P.862.2; the `pesq` package), on both signals resampled to 16 kHz: -0.5 .. 4.5;
  * STOI (Taal et al., 2011; the `pystoi` package), at the recording's rate: 0 .. 1;
  * MCD (dB), the established SPTK mel-cepstral distortion with DTW (`evaluate/mcd.mcd_sptk`, ESPnet's definition);
  * log-mel L1: mean |log-mel(recording) - log-mel(vocoded)| over the utterance's frames (the zoo's features);
  * real-time factor: seconds of audio made per second of wall time, one utterance per call (a second pass over the
    utterances, so every padded shape is compiled before the timing).

`copy_synthesis(vocode, recordings, mel_config)` scores one vocoding function (`log_mel (T, M) -> audio (S,)`) on
utterances given as float32 (S,) recordings at `mel_config.sample_rate`; the log-mel it inverts is the feature
cache's (`padded_log_mel_and_energy`), so the vocoded audio has (T - 1) * hop samples, compared with as many of the
recording's. An utterance PESQ cannot score (no speech found) counts as NaN and is reported, not dropped silently.
"""

from __future__ import annotations

import time

import numpy as np


def pesq_wideband(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    """PESQ-WB of `degraded` against `reference` (float (S,), same length and rate); NaN when PESQ finds no speech."""
    from pesq import pesq

    from mmspeech_jax.audio.io import resample

    ref, deg = (resample(np.asarray(x, np.float32), sample_rate, 16000) if sample_rate != 16000 else x
                for x in (reference, degraded))
    try:
        return float(pesq(16000, ref.astype(np.float64), deg.astype(np.float64), "wb"))
    except Exception:  # pesq's NoUtterancesError and its C library's errors
        return float("nan")


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    """STOI of `degraded` against `reference` (float (S,), same length and rate)."""
    from pystoi import stoi as pystoi

    return float(pystoi(np.asarray(reference, np.float64), np.asarray(degraded, np.float64), sample_rate))


def copy_synthesis(vocode, recordings, mel_config) -> dict:
    """vocode(log_mel (T, M)) -> (S,) float32; recordings: float32 (S,) arrays at mel_config.sample_rate ->
    {"pesq_wb", "stoi", "mcd_db", "log_mel_l1", "real_time_factor", "utterances", "pesq_failed"} (means over utterances)
    and "per_utterance" (a dict of lists)."""
    import jax

    from mmspeech_jax.audio.features import log_mel_spectrogram
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy

    rate, hop = mel_config.sample_rate, mel_config.hop_samples
    from mmspeech_jax.evaluate.mcd import mcd_sptk

    scores = {"pesq_wb": [], "stoi": [], "mcd_db": [], "log_mel_l1": []}
    mels = [padded_log_mel_and_energy(np.asarray(r, np.float32), mel_config)[0] for r in recordings]
    outputs = [np.asarray(vocode(mel), np.float32) for mel in mels]  # every shape compiles outside the timing
    started = time.perf_counter()
    for mel in mels:
        np.asarray(vocode(mel))
    seconds = time.perf_counter() - started
    for recording, mel, audio in zip(recordings, mels, outputs):
        length = min(audio.size, recording.size, (mel.shape[0] - 1) * hop)
        reference, degraded = np.asarray(recording[:length], np.float32), audio[:length]
        scores["pesq_wb"].append(pesq_wideband(reference, degraded, rate))
        scores["stoi"].append(stoi(reference, degraded, rate))
        scores["mcd_db"].append(mcd_sptk(reference, degraded, rate))
        true_mel, out_mel = (np.asarray(jax.device_get(log_mel_spectrogram(x, mel_config))) for x in
                             (reference, degraded))
        scores["log_mel_l1"].append(float(np.mean(np.abs(true_mel - out_mel))))
    total_audio = sum((m.shape[0] - 1) * hop for m in mels) / rate
    pesq_values = np.asarray(scores["pesq_wb"])
    return {"pesq_wb": float(np.nanmean(pesq_values)) if np.isfinite(pesq_values).any() else None,
            "stoi": float(np.mean(scores["stoi"])), "mcd_db": float(np.nanmean(scores["mcd_db"])),
            "log_mel_l1": float(np.mean(scores["log_mel_l1"])),
            "real_time_factor": total_audio / max(seconds, 1e-9), "utterances": len(mels),
            "pesq_failed": int(np.sum(~np.isfinite(pesq_values))), "per_utterance": scores}
