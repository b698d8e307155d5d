"""Audio I/O: formats, conversion, resampling and every bad-input case."""

import numpy as np
import pytest
import soundfile as sf

from mmspeech_jax.audio.io import audio_info, load_audio, resample, save_audio
from mmspeech_jax.errors import (AudioDecodeError, AudioFileExistsError, AudioFileNotFoundError, AudioFormatError,
                                 AudioTooLongError, EmptyAudioError, MMSpeechError, UnsupportedSampleRateError)


def tone(freq_hz, rate, seconds=0.5, amplitude=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def peak_hz(audio, rate):
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return np.argmax(spectrum) * rate / audio.size


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_roundtrip_is_exact_for_16_bit(tmp_path, ext):
    rng = np.random.default_rng(0)
    ints = rng.integers(-32768, 32767, size=4000, dtype=np.int16)
    audio = ints.astype(np.float32) / 32768.0
    path = save_audio(tmp_path / f"a.{ext}", audio, 22050)
    back, rate = load_audio(path)
    assert rate == 22050 and back.dtype == np.float32
    np.testing.assert_array_equal(back, audio)


def test_stereo_is_mixed_down(tmp_path):
    left, right = tone(440, 22050), tone(660, 22050)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 22050, subtype="FLOAT")
    mono, _ = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-6)
    with pytest.raises(AudioFormatError, match="mono"):
        load_audio(tmp_path / "s.wav", strict=True)


def test_8_bit_is_converted(tmp_path):
    audio = tone(440, 16000)
    sf.write(tmp_path / "u8.wav", audio, 16000, subtype="PCM_U8")
    back, _ = load_audio(tmp_path / "u8.wav")
    assert np.max(np.abs(back - audio)) < 2.0 / 128  # 8-bit quantisation step
    with pytest.raises(AudioFormatError, match="PCM_U8"):
        load_audio(tmp_path / "u8.wav", strict=True)


def test_odd_sample_rate_is_resampled(tmp_path):
    audio = tone(1000, 44100, seconds=1.0)
    sf.write(tmp_path / "hi.wav", audio, 44100, subtype="PCM_16")
    back, rate = load_audio(tmp_path / "hi.wav", 22050)
    assert rate == 22050 and abs(back.size - 22050) <= 1
    assert abs(peak_hz(back, 22050) - 1000) < 2
    with pytest.raises(AudioFormatError, match="22050"):
        load_audio(tmp_path / "hi.wav", 22050, strict=True)
    sf.write(tmp_path / "odd.wav", tone(500, 11025), 11025, subtype="PCM_16")
    up, _ = load_audio(tmp_path / "odd.wav", 22050)
    assert abs(peak_hz(up, 22050) - 500) < 3


def test_too_low_sample_rate(tmp_path):
    sf.write(tmp_path / "low.wav", tone(100, 4000), 4000, subtype="PCM_16")
    with pytest.raises(UnsupportedSampleRateError, match="4000 Hz"):
        load_audio(tmp_path / "low.wav")
    with pytest.raises(UnsupportedSampleRateError):
        resample(np.zeros(10, np.float32), 22050, 1000)


def test_missing_corrupt_empty_and_long(tmp_path):
    with pytest.raises(AudioFileNotFoundError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage not audio at all")
    with pytest.raises(AudioDecodeError):
        load_audio(tmp_path / "corrupt.wav")
    good = save_audio(tmp_path / "good.wav", tone(440, 22050, seconds=1.0), 22050)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioDecodeError):
        load_audio(truncated)
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 22050, subtype="PCM_16")
    with pytest.raises(EmptyAudioError):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioTooLongError, match="1.0 s"):
        load_audio(good, max_seconds=0.5)


def test_errors_are_one_line_and_share_a_base(tmp_path):
    (tmp_path / "corrupt.flac").write_bytes(b"\x00" * 100)
    with pytest.raises(MMSpeechError) as info:
        load_audio(tmp_path / "corrupt.flac")
    assert "\n" not in str(info.value) and "corrupt.flac" in str(info.value)


def test_save_never_overwrites(tmp_path):
    path = save_audio(tmp_path / "keep.wav", tone(440, 22050), 22050)
    before = path.read_bytes()
    with pytest.raises(AudioFileExistsError):
        save_audio(path, tone(880, 22050), 22050)
    assert path.read_bytes() == before
    save_audio(path, tone(880, 22050), 22050, overwrite=True)
    assert path.read_bytes() != before
    with pytest.raises(AudioFormatError, match="mp3"):
        save_audio(tmp_path / "x.mp3", tone(440, 22050), 22050)
    with pytest.raises(AudioFormatError, match="NaN"):
        save_audio(tmp_path / "nan.wav", np.array([0.0, np.nan], np.float32), 22050)
    assert not (tmp_path / "nan.wav").exists()


def test_audio_info(tmp_path):
    sf.write(tmp_path / "i.flac", np.zeros((1000, 2), np.float32), 16000, subtype="PCM_24")
    info = audio_info(tmp_path / "i.flac")
    assert (info.sample_rate, info.channels, info.num_samples, info.subtype) == (16000, 2, 1000, "PCM_24")
