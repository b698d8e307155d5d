"""Audio file I/O: soundfile to read and write, soxr to resample.

Policy (documented in the README, tested in tests/test_io.py):
  * Everything is returned as float32 mono in [-1, 1]. Multi-channel audio is mixed down by averaging channels;
    8-bit, 16-bit, 24-bit, 32-bit and float files are all converted by soundfile's scaling.
  * Any rate >= `MIN_SAMPLE_RATE` is resampled (soxr, "HQ") to the requested rate. Lower rates cannot carry the
    speech band and raise `UnsupportedSampleRateError`.
  * `strict=True` turns conversions into errors (`AudioFormatError`): for data whose format is a contract (a corpus
    that must be 22 050 Hz 16-bit mono), a mismatch is reported rather than silently fixed.
  * Corrupt, empty, missing and over-long files each raise their own `AudioError` subclass with a one-line message.
  * `save_audio` never overwrites an existing file unless asked to.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mmspeech_jax.errors import (
    AudioDecodeError,
    AudioFileExistsError,
    AudioFileNotFoundError,
    AudioFormatError,
    AudioTooLongError,
    EmptyAudioError,
    UnsupportedSampleRateError,
)

MIN_SAMPLE_RATE = 8000
_SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16"}


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file holds before conversion."""

    sample_rate: int
    channels: int
    num_samples: int
    subtype: str
    format: str

    @property
    def seconds(self) -> float:
        """Duration in seconds: num_samples / sample_rate."""
        return self.num_samples / self.sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Reads the header of an audio file. Raises `AudioFileNotFoundError` or `AudioDecodeError`."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or TypeError depending on the damage
        raise AudioDecodeError(f"cannot decode audio file {path}: {_first_line(exc)}") from exc
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), str(info.subtype), str(info.format))


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    *,
    max_seconds: float | None = None,
    strict: bool = False,
    expected_subtype: str | None = "PCM_16",
) -> tuple[np.ndarray, int]:
    """Loads an audio file as float32 mono, resampled to `sample_rate`.

    Args:
      path: a file soundfile can read (wav, flac, ogg, ...).
      sample_rate: target rate in Hz; None keeps the file's rate.
      max_seconds: raise `AudioTooLongError` for longer audio (checked from the header, before decoding).
      strict: raise `AudioFormatError` instead of mixing down, resampling or converting the sample format.
      expected_subtype: with `strict`, the sample format required (soundfile subtype name); None accepts any.

    Returns:
      (audio (S,) float32 in [-1, 1], sample_rate in Hz).
    """
    path = Path(path)
    info = audio_info(path)
    if info.sample_rate < MIN_SAMPLE_RATE:
        raise UnsupportedSampleRateError(
            f"{path}: sample rate {info.sample_rate} Hz is below the {MIN_SAMPLE_RATE} Hz minimum for speech"
        )
    if info.num_samples == 0:
        raise EmptyAudioError(f"{path}: audio file holds no samples")
    if max_seconds is not None and info.seconds > max_seconds:
        raise AudioTooLongError(f"{path}: {info.seconds:.1f} s is longer than the {max_seconds:g} s maximum")
    if strict:
        if info.channels != 1:
            raise AudioFormatError(f"{path}: expected mono audio, found {info.channels} channels")
        if sample_rate is not None and info.sample_rate != sample_rate:
            raise AudioFormatError(f"{path}: expected {sample_rate} Hz, found {info.sample_rate} Hz")
        if expected_subtype is not None and info.subtype != expected_subtype:
            raise AudioFormatError(f"{path}: expected sample format {expected_subtype}, found {info.subtype}")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioDecodeError(f"cannot decode audio file {path}: {_first_line(exc)}") from exc
    if data.shape[0] == 0:
        raise EmptyAudioError(f"{path}: audio file holds no samples")
    audio = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(f"{path}: audio holds NaN or infinite samples")
    if sample_rate is not None and file_rate != sample_rate:
        audio = resample(audio, file_rate, sample_rate)
        file_rate = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), int(file_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resamples float audio (S,) with soxr (high quality). Returns float32 (S * to_rate / from_rate,)."""
    if from_rate < MIN_SAMPLE_RATE or to_rate < MIN_SAMPLE_RATE:
        raise UnsupportedSampleRateError(f"cannot resample {from_rate} Hz -> {to_rate} Hz: below {MIN_SAMPLE_RATE} Hz")
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), from_rate, to_rate, quality="HQ").astype(np.float32)


def clip_protected(wave, ceiling: float = 0.99) -> np.ndarray:
    """float32 audio (S,) at the level it was made, scaled down only where its largest magnitude passes `ceiling`
    (then to exactly `ceiling`), so a file write never clips: how every synthesized waveform is returned, written
    and logged. The level is the model's: a mel encodes loudness, and a recognizer trained on the corpus hears a
    rescaled waveform as a shifted log-mel (peak-normalizing the closed loop's audio to 0.9 cost the ASR 1.4 CER
    points on synthesized speech, benchmarks/RESULTS.md)."""
    wave = np.asarray(wave, np.float32)
    top = float(np.max(np.abs(wave))) if wave.size else 0.0
    return wave * (ceiling / top) if top > ceiling else wave


def check_audio_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """The checks `save_audio` makes on its path (a .wav or .flac name; no existing file unless `overwrite`), for
    callers that want them before long work rather than after it."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in _SUBTYPES:
        raise AudioFormatError(f"{path}: unsupported output format '.{ext}', use .wav or .flac")
    if path.exists() and not overwrite:
        raise AudioFileExistsError(f"refusing to overwrite existing file {path} (pass overwrite=True)")
    from mmspeech_jax.output_paths import check_output_file

    # a folder at the path, or a parent that is a file or read-only (save_audio creates missing folders)
    return check_output_file(path, overwrite=True, what="audio output", create_parents=True)


def save_audio(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, overwrite: bool = False, subtype: str | None = None
) -> Path:
    """Writes mono float audio (S,) in [-1, 1] as wav or flac (by extension), 16-bit PCM by default.

    Values outside [-1, 1] are clipped (soundfile would wrap them). Refuses to overwrite an existing file unless
    `overwrite=True`; the file is written to a temporary name first, so a crash never leaves half a file behind.
    """
    path = check_audio_output(path, overwrite=overwrite)
    ext = path.suffix.lower().lstrip(".")
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise EmptyAudioError(f"{path}: expected non-empty mono audio of shape (S,), got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioFormatError(f"{path}: refusing to save audio with NaN or infinite samples")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    sf.write(str(tmp), np.clip(audio, -1.0, 1.0), int(sample_rate), subtype=subtype or _SUBTYPES[ext], format=ext.upper())
    os.replace(tmp, path)
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
