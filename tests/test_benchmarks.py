"""Benchmark plumbing that runs where the numbers are taken (a lent GPU): the trace summary, checked on a trace
whose answer is worked out by hand, and the device suite's budget and entry handling. The suite itself, end to end
on tiny presets, is the slow test below."""

import subprocess
import sys

import numpy as np
import pytest

from benchmarks.device_suite import BUDGET_S, entry_of, plan
from benchmarks.step_trace import interval_union, scope_of, summarize


def meta(pid, name, tid=None):
    event = {"ph": "M", "pid": pid, "name": "process_name" if tid is None else "thread_name", "args": {"name": name}}
    if tid is not None:
        event["tid"] = tid
    return event


def op(pid, tid, name, ts, dur, **args):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur, "args": args}


SCOPE_A = "jit(train_step)/jvp(FastSpeech2)/decoder/block_0/attention/dot_general"
SCOPE_B = "jit(train_step)/transpose(jvp(FastSpeech2))/encoder/block_1/conv/conv_general_dilated"
TRACE = {"traceEvents": [
    meta(1, "/device:GPU:0"), meta(1, "Stream #7(Compute)", 10), meta(1, "XLA Ops", 11), meta(1, "XLA Modules", 12),
    meta(2, "/host:CPU"), meta(2, "python", 20),
    # kernels (µs): [0, 10) and [5, 15) overlap -> 15 covered; [30, 40) -> 25 covered of a 40 µs span, 2 steps
    op(1, 10, "gemm_kernel", 0, 10), op(1, 10, "elementwise_kernel", 5, 10), op(1, 10, "conv_kernel", 30, 10),
    op(1, 11, "fusion.1", 0, 8, tf_op=SCOPE_A), op(1, 11, "fusion.1", 20, 4, tf_op=SCOPE_A),
    op(1, 11, "convolution.2", 30, 20, tf_op=SCOPE_B),
    op(1, 12, "jit_train_step", 0, 40), op(1, 12, "jit_train_step", 0, 40),
    op(2, 20, "PjitFunction(train_step)", 0, 1000),  # host events never count as device time
]}


def table_rows(text, header):
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_interval_union_against_brute_force():
    intervals = [(0, 10), (5, 15), (30, 40), (32, 35), (40, 41), (-3, -1)]
    covered = {t for s, e in intervals for t in range(s, e)}  # unit cells, brute force
    assert interval_union(intervals) == len(covered) == 15 + 11 + 2


def test_summary_of_a_hand_made_trace():
    text = summarize(TRACE, steps=2)
    assert "span 0.02 ms, some kernel running 0.01 ms (62.5 %), idle 0.01 ms" in text  # 40/2 µs, 25/2 µs
    assert "XLA modules run per step: 1.0 (jit_train_step)" in text
    # per line, the sum of its events per step (µs / 2 steps): modules 80, ops 8 + 4 + 20, kernels 10 + 10 + 10
    assert table_rows(text, "| trace line |") == [["XLA Modules", "0.040"], ["XLA Ops", "0.016"],
                                                  ["Stream #7(Compute)", "0.015"]]
    rows = table_rows(text, "| XLA op |")
    assert rows == [["`convolution.2`", "0.5", "0.010", "62.5 %"], ["`fusion.1`", "1.0", "0.006", "37.5 %"]]
    scopes = table_rows(text, "| name scope |")
    assert scopes == [["`FastSpeech2/encoder/block_1`", "0.010", "62.5 %"],
                      ["`FastSpeech2/decoder/block_0`", "0.006", "37.5 %"]]
    assert "Arguments the op events carry: tf_op." in text


def test_summary_without_device_processes():
    host_only = {"traceEvents": [meta(2, "/host:CPU"), meta(2, "python", 20), op(2, 20, "x", 0, 5)]}
    assert summarize(host_only, steps=1).startswith("No accelerator processes")


def test_scope_of_strips_transformations_and_the_jitted_function():
    assert scope_of(SCOPE_B) == "FastSpeech2/encoder/block_1"
    assert scope_of("jit(train_step)/remat(checkpoint(ConformerStack))/block_3/ffn_in", depth=2) == "ConformerStack/block_3"
    assert scope_of("jit(train_step)") == "(no scope)"


def test_plan_puts_the_mfu_target_first_and_fits_the_device_budget():
    runs = plan(smoke=False, out="OUT")
    assert runs[0][1][:1] == ["benchmarks.tts_step"]
    first = runs[0][1]
    assert first[first.index("--preset") + 1] == "ljspeech" and first[first.index("--batch_size") + 1] == "48"
    assert first[first.index("--compute_dtype") + 1] == "bfloat16"
    # The lease is 15 min with a start of a few minutes: one command of at most 10 min (the run tool's limit).
    assert all(limit <= 600 for _, _, limit, _ in runs)
    assert sum(limit for _, _, limit, _ in runs[:2]) <= BUDGET_S  # the TTS and the ASR step always run
    assert runs[0][3] == {"XLA_FLAGS": "--xla_gpu_autotune_level=0"} and runs[2][3] == {}
    assert BUDGET_S + 60 <= 600 - 60  # with a minute for the environment, inside one `run` call and its margin


def test_entry_of_takes_the_printed_entry_only():
    assert entry_of("WARNING: noise\n### Heading\n\nrow\n") == "### Heading\n\nrow\n"
    assert entry_of("Traceback (most recent call last): ...") == ""


@pytest.mark.slow
def test_device_suite_smoke_on_cpu(tmp_path):
    """Every run of the suite, tiny presets, on the CPU: each exits 0 and leaves its entry and files."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_suite", "--out", str(tmp_path), "--smoke",
                           "--budget_s", "2000"], capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (tmp_path / "suite.log").read_text()
    assert log.count(": exit 0 in ") == 9, log[-3000:]
    assert log.count("XLA_FLAGS=--xla_gpu_autotune_level=0 python -m") == 7  # the variable reached the runs
    entries = (tmp_path / "entries.md").read_text()
    assert entries.count("### FastSpeech2 train step") == 4 and entries.count("### CTC ASR train step") == 1
    assert entries.count("Command: `XLA_FLAGS='--xla_gpu_autotune_level=0' python -m") == 7
    assert "### Vocoder train step" in entries
    assert "### Joint speech–text train step" in entries and "Pretraining schedule" in entries
    assert "### Recurrences over frames" in entries
    assert "### TTS train step trace" in entries
    for name in ("perfetto_trace.json.gz", "step_hlo.txt.gz", "trace_summary.md"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_run_stopped_at_its_limit_keeps_what_it_printed(tmp_path):
    """run_streamed writes the child's output as it goes: a run killed at its time limit still returns its
    progress lines (on 2026-12-04 a GPU run that timed out left nothing)."""
    from benchmarks.device_suite import run_streamed

    script = tmp_path / "slow_child.py"
    script.write_text("import sys, time\nprint('phase one', flush=True)\nprint('on stderr', file=sys.stderr)\n"
                      "time.sleep(60)\nprint('never')\n")
    returncode, out, err = run_streamed(["slow_child"], 3, tmp_path / "run0", {"PYTHONPATH": str(tmp_path)})
    assert returncode is None
    assert out == "phase one\n" and err == "on stderr\n"
    assert not list(tmp_path.glob("run0.*"))  # its files went into the returned text


def test_device_suite_skips_runs_that_would_pass_its_budget(tmp_path):
    """With a 1 s budget every run's limit would pass it: all are skipped, none leaves an entry."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_suite", "--out", str(tmp_path), "--smoke",
                           "--budget_s", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (tmp_path / "suite.log").read_text()
    assert log.count(": skipped (") == len(plan(smoke=True, out=tmp_path)) and ": exit " not in log
    assert (tmp_path / "entries.md").read_text() == ""


def test_asr_level_scales_the_waveforms_and_scores_each_gain():
    """A stand-in transcriber that hears "aaaa" only above a 0.5 peak ("bbbb", every character wrong, below): the CER per gain follows the scaling
    (by hand: peaks 0.4 and 0.8 at 0 dB; +6 dB lifts both past 0.5, -6 dB lowers both under it)."""
    import numpy as np

    from benchmarks.asr_level import level_cers

    class Threshold:
        def transcribe(self, items, batch_size=16):
            return [{"text": "aaaa" if np.abs(w).max() > 0.5 else "bbbb"} for w, _ in items]

    waves = [(np.full(100, 0.4, np.float32), 16000), (np.full(100, 0.8, np.float32), 16000)]
    cers = level_cers(Threshold(), waves, ["aaaa", "aaaa"], gains_db=(-6.0, 0.0, 6.0))
    assert cers[6.0] == 0.0 and cers[0.0] == pytest.approx(0.5) and cers[-6.0] == pytest.approx(1.0)


def test_asr_noise_mixes_at_each_snr_and_scores_each_noise():
    """`mixed` sets the sentence-over-noise power ratio (float64, by hand); babble is the unit-power sum of the next
    four sentences; a stand-in transcriber that hears "aaaa" only when its input lies over 12 dB above what was
    added to the clean sentence ("bbbb", every character wrong, otherwise) scores 0 clean, at 20 and 15 dB and 1 at
    10 and 5 dB, for every noise."""
    import numpy as np

    from benchmarks.asr_noise import mixed, noise_for, noise_rates

    rng = np.random.default_rng(0)
    clean = [rng.normal(0, a, n).astype(np.float32) for a, n in ((0.1, 300), (0.3, 500), (0.05, 400), (0.2, 350),
                                                                  (0.1, 420))]
    for snr in (0.0, 7.5):
        noise = rng.normal(0, 3, 300)
        got = mixed(clean[0], noise, snr).astype(np.float64) - clean[0]
        assert 10 * np.log10(np.mean(clean[0].astype(np.float64) ** 2) / np.mean(got ** 2)) == pytest.approx(snr,
                                                                                                            abs=1e-4)
    babble = noise_for("babble", 3, clean, rng)
    want = sum(np.resize(clean[k % 5].astype(np.float64), 350) for k in (4, 5, 6, 7))
    np.testing.assert_allclose(babble, want / np.sqrt(np.mean(want ** 2)), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown noise"):
        noise_for("hum", 0, clean, rng)

    class Listener:
        def transcribe(self, items, batch_size=16):
            out = []
            for (w, _), c in zip(items, clean):
                added = np.mean((w.astype(np.float64) - c) ** 2)
                out.append({"text": "aaaa" if added == 0 or np.mean(c.astype(np.float64) ** 2) / added > 10 ** 1.2
                            else "bbbb"})
            return out

    rates = noise_rates(Listener(), [(c, 16000) for c in clean], ["aaaa"] * 5, snrs_db=(20.0, 15.0, 10.0, 5.0))
    assert rates["clean"]["cer"] == 0.0
    for kind in ("white", "pink", "babble"):
        assert [rates[kind][s]["cer"] for s in (20.0, 15.0, 10.0, 5.0)] == [0.0, 0.0, 1.0, 1.0]
        assert rates[kind][5.0]["wer"] == 1.0


def test_vocoder_phase_oracle_swaps_in_the_true_phase_below_each_cutoff():
    """Random spectra: each row keeps the magnitude it names and takes its phase from the side the cutoff says (bin k
    at k * bin_hz), checked bin by bin against the inputs."""
    import numpy as np

    from benchmarks.vocoder_phase import oracle_spectra

    rng = np.random.default_rng(0)
    magnitude, phase = rng.uniform(0.1, 2.0, (5, 9)), rng.uniform(-np.pi, np.pi, (5, 9))
    true = rng.uniform(0.1, 2.0, (5, 9)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (5, 9)))
    rows = oracle_spectra(magnitude, phase, true, bin_hz=100.0, cutoffs=(250.0,))
    close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-12)
    close(rows["vocoder"], magnitude * np.exp(1j * phase))
    close(rows["vocoder magnitude, true phase"], magnitude * true / np.abs(true))
    close(rows["true magnitude, vocoder phase"], np.abs(true) * np.exp(1j * phase))
    mixed = rows["true phase below 250 Hz"]  # bins 0, 1, 2 (0, 100, 200 Hz) true; 3.. (300 Hz up) the vocoder's
    close(mixed[:, :3], rows["vocoder magnitude, true phase"][:, :3])
    close(mixed[:, 3:], rows["vocoder"][:, 3:])


def test_vocoder_phase_magnitude_rows_keep_their_magnitude_and_take_each_algorithms_phase():
    """Random spectra: the rows whose phase comes from a magnitude keep the magnitude they name and carry the phase of
    the algorithm they name, computed on that magnitude."""
    import jax.numpy as jnp
    import numpy as np

    from benchmarks.vocoder_phase import magnitude_phase_spectra
    from mmspeech_jax.audio.peak_phase import peak_locked_phase
    from mmspeech_jax.audio.phase_gradient import phase_gradient_phase

    rng = np.random.default_rng(1)
    magnitude = rng.uniform(0.1, 2.0, (6, 33))
    true = rng.uniform(0.1, 2.0, (6, 33)) * np.exp(1j * rng.uniform(-np.pi, np.pi, (6, 33)))
    rows = magnitude_phase_spectra(magnitude, true, 64, 16, 64)
    want = {"vocoder magnitude, phase from its gradient": (magnitude, phase_gradient_phase(magnitude, 64, 16, 64)),
            "true magnitude, phase from its gradient": (np.abs(true), phase_gradient_phase(np.abs(true), 64, 16, 64)),
            "true magnitude, peak-locked phase": (np.abs(true), peak_locked_phase(jnp.asarray(np.abs(true)), 64, 16))}
    assert set(rows) == set(want)
    for name, (m, p) in want.items():
        np.testing.assert_allclose(rows[name], m * np.exp(1j * np.asarray(p, np.float64)), atol=1e-5, err_msg=name)


def test_vocoder_copy_centre_l1_scores_only_the_crops_centre_frames():
    """A fake vocoder whose output's log-mel is the crop plus 1 in its first and last 3 frames: the 13 centre frames
    score 0 when the crop has 33 frames, and (edge frames among them) / 13 when it has 17; a log-mel too short for
    the crop is a ValueError."""
    import numpy as np

    from benchmarks.vocoder_copy import centre_l1

    log_mel = np.random.default_rng(0).normal(size=(101, 4))

    def vocode(crop):  # "audio" that log_mel_of turns back into the crop with its ends off by 1
        out = crop.copy()
        out[:3] += 1.0
        out[-3:] += 1.0
        return out

    assert centre_l1(vocode, lambda a: a, log_mel, half=16) == 0.0
    # half 8: 17 frames, the scored 13 are frames 2-14, of which frames 2 and 14 are edge frames (0-2, 14-16)
    assert centre_l1(vocode, lambda a: a, log_mel, half=8) == pytest.approx(2 / 13)
    with pytest.raises(ValueError, match="need at least 203"):
        centre_l1(vocode, lambda a: a, log_mel, half=101)


def test_inference_asr_groups_cover_each_utterance_once_in_their_order():
    """`benchmarks.inference.asr_groups`: "single" one utterance a call in input order, "input" consecutive batches,
    "sorted" batches of ascending length; every index once in each."""
    from benchmarks.inference import asr_groups

    lengths = np.array([700, 500, 1500, 900, 600, 1200, 800])
    assert [g.tolist() for g in asr_groups(lengths, 3, "single")] == [[i] for i in range(7)]
    assert [g.tolist() for g in asr_groups(lengths, 3, "input")] == [[0, 1, 2], [3, 4, 5], [6]]
    assert [g.tolist() for g in asr_groups(lengths, 3, "sorted")] == [[1, 4, 0], [6, 3, 5], [2]]


def test_long_form_recordings_join_consecutive_sentences_within_the_limit():
    """`benchmarks.long_form.joined_recordings`: every utterance once, in order, `gap` samples of silence between
    neighbours, no recording past the limit unless one utterance alone is longer."""
    from types import SimpleNamespace

    from benchmarks.long_form import joined_recordings

    rng = np.random.default_rng(0)
    sizes = [5, 30, 12, 70, 8, 8, 8, 3]  # samples at a rate of 1 Hz; the limit is 0.5 min = 30 samples, gap 2
    waves = {i: rng.normal(size=n).astype(np.float32) + 10 for i, n in enumerate(sizes)}
    corpus = SimpleNamespace(audio=lambda u: waves[u.id])
    utterances = [SimpleNamespace(id=i, sample_rate=1) for i in range(len(sizes))]
    recordings = joined_recordings(corpus, utterances, 0.5, 2.0)
    assert [[u.id for u in members] for _, members in recordings] == [[0], [1], [2], [3], [4, 5, 6], [7]]
    for wave, members in recordings:
        expected = np.concatenate([x for u in members for x in (np.zeros(2, np.float32), waves[u.id])][1:])
        np.testing.assert_array_equal(wave, expected)
        assert wave.size <= 30 or len(members) == 1
