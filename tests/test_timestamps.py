"""CTC timestamps (`decoding/timestamps.py`): the forced alignment against a brute-force search over every CTC path,
the word grouping, the frame-to-seconds mapping against the frontend's receptive field, and the Transcriber's
batched API and `mmspeech transcribe --timestamps`."""

import itertools
import json

import numpy as np
import pytest
import soundfile as sf

from mmspeech_jax.decoding.ctc import collapse
from mmspeech_jax.decoding.timestamps import forced_alignment, frame_times, label_spans, timestamps
from mmspeech_jax.layers.subsampling import FACTORS, subsampled_length


def brute_force_best_path(log_probs, labels):
    """The most probable path (frame symbols) among all V^T that collapse to `labels`, and its score."""
    t, v = log_probs.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(v), repeat=t):
        if collapse(path) == list(labels):
            score = sum(log_probs[i, s] for i, s in enumerate(path))
            if score > best:
                best, best_path = score, path
    return best_path, best


@pytest.mark.parametrize("seed", range(6))
def test_forced_alignment_is_the_best_path_that_spells_the_labels(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        t, v = int(rng.integers(1, 7)), 3
        log_probs = np.log(rng.dirichlet(np.ones(v), size=t))
        labels = [int(x) for x in rng.integers(1, v, int(rng.integers(0, 4)))]  # repeats included
        expected_path, expected_score = brute_force_best_path(log_probs, labels)
        frame_labels = forced_alignment(log_probs, t, labels)
        if expected_path is None:  # e.g. [1, 1] in 2 frames: a blank must separate the repeats
            assert frame_labels is None
            continue
        path = [0 if i < 0 else labels[i] for i in frame_labels]
        assert collapse(path) == labels
        assert sum(log_probs[i, s] for i, s in enumerate(path)) == pytest.approx(expected_score, abs=1e-9)
        spans = label_spans(frame_labels, len(labels))
        assert all(a <= b for a, b in spans) and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))


def test_only_valid_frames_count():
    log_probs = np.log(np.full((6, 3), 1 / 3))
    assert forced_alignment(log_probs, 3, [1, 1, 2]) is None  # needs 4 frames; the padding may not be used
    assert forced_alignment(log_probs, 4, [1, 1, 2]).tolist() == [0, -1, 1, 2]


def test_words_are_runs_between_spaces():
    symbols = ["<pad>", "a", "b", " "]
    log_probs = np.log(np.full((9, 4), 0.01))
    for frame, symbol in enumerate([1, 0, 2, 3, 3, 0, 1, 1, 0]):  # the best path spells "ab a"
        log_probs[frame, symbol] = 0.97
    out = timestamps(log_probs, 9, [1, 2, 3, 1], symbols, frame_seconds=0.1, offset_seconds=0.05)
    assert [c["char"] for c in out["chars"]] == ["a", "b", " ", "a"]
    assert out["chars"][0] == {"char": "a", "start": 0.05, "end": 0.15}
    assert out["words"] == [{"word": "ab", "start": 0.05, "end": 0.35}, {"word": "a", "start": 0.65, "end": 0.85}]


@pytest.mark.parametrize("factor", sorted(FACTORS))
def test_frame_times_follow_the_receptive_field(factor):
    """Output frame j of two valid 3-tap convolutions (strides s1, s2) reads input frames [j*s1*s2, (j*s2+2)*s1+2]:
    its centre, in seconds, is what frame_times gives for the centre of j's span."""
    s1, s2 = FACTORS[factor]
    hop = 256 / 22050
    seconds, offset = frame_times(factor, s1, hop)
    for j in range(int(subsampled_length(100, factor))):
        first_conv = range(j * s2, j * s2 + 3)
        inputs = [i * s1 + k for i in first_conv for k in range(3)]
        centre = (min(inputs) + max(inputs)) / 2 * hop
        assert offset + (j + 0.5) * seconds == pytest.approx(centre)


def test_transcriber_batches_and_timestamps(tiny_asr_workdir, tmp_path, capsys):
    """`transcribe(items, batch_size)` gives what one item at a time gives; timestamps lie inside the audio, in
    order, and their words spell the text; the CLI writes them with --timestamps."""
    from mmspeech_jax.cli import main as cli
    from mmspeech_jax.transcribe import Transcriber

    rng = np.random.default_rng(0)
    waves = [(rng.normal(size=int(22050 * s)).astype(np.float32) * 0.1, 22050) for s in (0.6, 1.4, 1.0)]
    asr = Transcriber.from_workdir(tiny_asr_workdir)
    batched = asr.transcribe(waves, batch_size=2, timestamps=True)
    single = [asr.transcribe([w], batch_size=1)[0] for w in waves]
    assert [r["text"] for r in batched] == [r["text"] for r in single]
    for row, (wave, rate) in zip(batched, waves):
        assert [w["word"] for w in row["words"]] == row["text"].split()
        times = [t for c in row["chars"] for t in (c["start"], c["end"])]
        assert times == sorted(times) and (not times or (times[0] >= 0 and times[-1] <= wave.size / rate + 0.1))
    paths = []
    for i, (wave, rate) in enumerate(waves):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], wave, rate)
    out = tmp_path / "r.jsonl"
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), *paths, "--timestamps", "--batch-size", "2",
                "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["path"] for r in rows] == paths and all("words" in r and "chars" in r for r in rows)
    assert [r["text"] for r in rows] == [r["text"] for r in batched]
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), paths[0], "--batch-size", "0"]) == 2


def test_long_recordings_run_in_windows(tiny_asr_workdir, tmp_path, capsys):
    """A log-mel longer than `chunk_seconds`: `log_probs_many` gives subsampled_length(T) frames, each window's kept
    range equal to that window's own single pass (atol 1e-4), and a log-mel that fits in one window is one pass; one
    with pauses is cut in them, and any log-mel's pauses are silenced first (with `pause_seconds` 0, or without
    pauses, the overlapping windows and no silencing) when the recognizer trained without noise augmentation or
    `silence_pauses` says so. The CLI
    transcribes a 70 s recording (over the 60 s a single pass takes) with timestamps inside it, and refuses a bad
    --chunk-seconds or --pause-seconds in one line."""
    import dataclasses

    from mmspeech_jax.audio.noise_augment import NoiseAugmentConfig
    from mmspeech_jax.cli import main as cli
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.long_form import PAUSE_SECONDS, pauses, silenced
    from mmspeech_jax.models.ctc_asr import CTCASR
    from mmspeech_jax.transcribe import Transcriber

    rng = np.random.default_rng(1)
    short, long = (rng.normal(size=(n, 80)).astype(np.float32) for n in (200, 800))
    paused = rng.normal(size=(800, 80)).astype(np.float32)
    for start in range(150, 800, 180):
        paused[start:start + 30] = rng.normal(-8.0, 0.1, (30, 80))  # 30 frames (0.35 s) of faint noise
    trained = Transcriber.from_workdir(tiny_asr_workdir)
    assert trained.model.config.noise_augment is not None and not trained.silences_pauses  # the experiment's default
    # the same parameters as a recognizer trained without noise augmentation, whose pauses are silenced
    asr = Transcriber(CTCASR(dataclasses.replace(trained.model.config, noise_augment=None)), trained.params,
                      trained.stats, trained.mel_config)
    asr.chunk_seconds, asr.context_seconds = 3.0, 0.5
    factor = asr.model.config.subsampling
    plan = asr.windows(long.shape[0])
    assert len(plan) >= 3 and asr.windows(short.shape[0])[0].end == short.shape[0]
    assert asr.pause_seconds == PAUSE_SECONDS > 0
    asr.pause_seconds = 0.0
    assert asr.windows(paused.shape[0], paused) == asr.windows(paused.shape[0])
    asr.pause_seconds = 0.2
    assert asr.windows(long.shape[0], long) == plan  # no pause in loud noise
    quiet = pauses(paused, asr._frames(0.2))
    paused_plan = asr.windows(paused.shape[0], paused)
    cuts = [w.start for w in paused_plan[1:] if w.start == w.keep_start * factor]
    assert cuts and quiet[cuts].all() and quiet.sum() >= 4 * (30 - 17)
    silent = silenced(paused, quiet, float(np.log(asr.mel_config.log_floor)), 8 - 2)  # what the windows read
    gated = (silent == np.float32(np.log(1e-5))).all(axis=1)
    assert gated.sum() == 4 * (30 - 2 * 2)  # each pause less 0.025 s (2 frames) at each edge
    assert (silent[~gated] == paused[~gated]).all()
    asr.pause_seconds = -1.0
    with pytest.raises(ConfigError, match="pause_seconds must be in"):
        asr.windows(paused.shape[0], paused)
    asr.pause_seconds = 0.2
    got_short, got_long, got_paused = asr.log_probs_many([short, long, paused], batch_size=4)
    for mel, got, windows in ((long, got_long, plan), (silent, got_paused, paused_plan)):
        assert got.shape[0] == subsampled_length(mel.shape[0], factor)
        for w in windows:
            alone, n = asr.log_probs([mel[w.start:w.end]])
            local = slice(w.keep_start - w.start // factor, w.keep_end - w.start // factor)
            np.testing.assert_allclose(got[w.keep_start:w.keep_end], alone[0, : int(n[0])][local], atol=1e-4)
    alone, n = asr.log_probs([short])
    np.testing.assert_allclose(got_short, alone[0, : int(n[0])], atol=1e-4)
    # a short log-mel with a pause: one pass over it silenced
    short_paused = paused[100:300]
    quiet_short = pauses(short_paused, asr._frames(0.2))
    assert quiet_short.any()
    got = asr.log_probs_many([short_paused])[0]
    for mel, same in ((silenced(short_paused, quiet_short, float(np.log(1e-5)), 8 - 2), True), (short_paused, False)):
        alone, n = asr.log_probs([mel])
        assert np.allclose(got, alone[0, : int(n[0])], atol=1e-4) == same
    assert asr.transcribe_many([long])[0]["text"] == asr._decoded(got_long[None], [got_long.shape[0]], False)[0]["text"]
    # a recognizer trained with noise hears the pauses as they are (still cut in them), unless told to silence them
    assert asr.silence_pauses is None and asr.silences_pauses
    noisy = Transcriber(CTCASR(dataclasses.replace(asr.model.config, noise_augment=NoiseAugmentConfig())),
                        asr.params, asr.stats, asr.mel_config)
    noisy.chunk_seconds, noisy.context_seconds = asr.chunk_seconds, asr.context_seconds
    assert not noisy.silences_pauses and noisy.windows(paused.shape[0], paused) == paused_plan
    heard, alone = noisy.log_probs_many([short_paused])[0], asr.log_probs([short_paused])
    np.testing.assert_allclose(heard, alone[0][0, : int(alone[1][0])], atol=1e-4)
    noisy.silence_pauses = True
    np.testing.assert_allclose(noisy.log_probs_many([short_paused])[0], got, atol=1e-4)
    assert noisy.with_compute_dtype("float32").silences_pauses
    asr.silence_pauses = False
    assert not asr.silences_pauses and not asr.with_compute_dtype("float32").silences_pauses
    asr.silence_pauses = None

    path, out = tmp_path / "long.wav", tmp_path / "long.jsonl"
    sf.write(path, (rng.normal(size=22050 * 70) * 0.1).astype(np.float32), 22050)
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--timestamps", "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    times = [t for c in row["chars"] for t in (c["start"], c["end"])]
    assert "error" not in row and times == sorted(times) and (not times or times[-1] <= 70.1)
    capsys.readouterr()
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--chunk-seconds", "90"]) == 2
    assert "chunk_seconds must be in (0, 60]" in capsys.readouterr().err
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--pause-seconds", "-1"]) == 2
    assert "pause_seconds must be in [0, chunk_seconds = 10]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--silence-pauses", "maybe"])
    assert exit_info.value.code == 2 and "--silence-pauses" in capsys.readouterr().err
    assert cli(["transcribe", "--workdir", str(tiny_asr_workdir), str(path), "--silence-pauses", "off", "--out",
                str(tmp_path / "off.jsonl")]) == 0
