"""Speech -> text with a trained CTC workdir.

    from mmspeech_jax.transcribe import Transcriber
    asr = Transcriber.from_workdir("workdir/ljspeech_asr")
    text = asr.transcribe_file("a.wav")            # any rate, mono or stereo, int or float wav/flac
    texts = asr.transcribe_features([mel, ...])    # log-mel (T, M) arrays as the feature cache stores them
    asr = Transcriber.from_workdir("workdir/ljspeech_asr", "beam", lm_workdir="workdir/text_lm")  # shallow fusion

With a language model (`lm_workdir`, a `python -m experiments.text_lm` workdir), the beam search adds
`lm_weight` * log p_lm + `length_bonus` per symbol; by default the weights the ASR experiment chose on its validation
split (`report.json`: `lm_weight`, `length_bonus`, written by `experiments.ljspeech_asr --lm`), else
DEFAULT_LM_WEIGHT and DEFAULT_LENGTH_BONUS.

Features are padded to a ladder of frame counts (multiples of 256 frames), so a session compiles a few times, not
once per file length; `transcribe` and `transcribe_many` run files of similar length together. Recordings longer
than `chunk_seconds` (default CHUNK_SECONDS; up to MAX_AUDIO_SECONDS) run as windows cut in the recording's pauses
of at least `pause_seconds` (default PAUSE_SECONDS) where it has them, else overlapping with `context_seconds` of
context at each side; their output frames are stitched before decoding (`long_form.py`). For a recognizer trained
without noise augmentation (its config's `noise_augment` is None), `transcribe_many` (so `transcribe` and the CLI)
first silences such pauses in every recording (`long_form.silenced`): trained on clean speech, it writes letters into
background noise. One trained with noise hears the pauses as they are, which it transcribes better
(`silence_pauses`: None chooses so, True or False forces it; benchmarks/RESULTS.md, "ASR noise augmentation").
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig, check_log_mel
from mmspeech_jax.audio.io import load_audio, resample
from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
from mmspeech_jax.decoding.ctc import decode_batch
from mmspeech_jax.errors import ConfigError, EmptyAudioError, FeatureError
from mmspeech_jax.layers.subsampling import FACTORS as SUBSAMPLING_FACTORS
from mmspeech_jax.long_form import (CHUNK_SECONDS, CONTEXT_SECONDS, MAX_AUDIO_SECONDS, PAUSE_EDGE_SECONDS,
                                    PAUSE_SECONDS, pauses, silenced, stitch, windows)
from mmspeech_jax.models.ctc_asr import CTCASR, CTCASRConfig, normalize_features
from mmspeech_jax.text.symbols import SymbolTable, character_table
from mmspeech_jax.workdir import read_workdir_config, restore_params

FRAME_QUANTUM = 256
MAX_SECONDS = 60.0  # the longest log-mel one forward pass takes (`log_probs`); longer ones go through windows
DEFAULT_LM_WEIGHT, DEFAULT_LENGTH_BONUS = 0.5, 1.0


def frame_rung(frames: int) -> int:
    """Padded frame count of a `frames`-frame log-mel: the next multiple of FRAME_QUANTUM (at least one)."""
    return -(-max(int(frames), 1) // FRAME_QUANTUM) * FRAME_QUANTUM


def load_lm_scorer(lm_workdir):
    """A `python -m experiments.text_lm` workdir, or its `mmspeech export`, -> the beam search's scorer
    (`text_lm.lm_scorer`). One-line errors for a workdir that is not a language model's or whose symbols differ from
    the character table."""
    from mmspeech_jax.export import is_export, load_exported, read_export_config
    from mmspeech_jax.models.text_lm import TextLM, TextLMConfig, lm_scorer

    lm_workdir = Path(lm_workdir)
    if is_export(lm_workdir):
        config = read_export_config(lm_workdir)
        if config.get("task") != "lm":
            raise ConfigError(f"{lm_workdir} is not a language-model export (config.json task is "
                              f"{config.get('task')!r})")
        model, params, table, _ = load_exported(lm_workdir)
        character_table().check_compatible(table)
        return lm_scorer(model, params)
    config = read_workdir_config(lm_workdir)
    if config.get("task") != "lm":
        raise ConfigError(f"{lm_workdir} is not a language-model workdir (config.json task is {config.get('task')!r})")
    character_table().check_compatible(SymbolTable.load(lm_workdir / "symbols.json"))
    params, _ = restore_params(lm_workdir)
    return lm_scorer(TextLM(TextLMConfig.from_dict(config["model"])), params)


class Transcriber:
    """Speech -> text with a trained CTC recognizer: log-mel as the training features, normalized by the corpus
    statistics, one jitted forward pass at padded shapes, greedy or beam decoding (with an optional LM fused).
    `from_workdir` (a training workdir or an export) and `from_export` build one. Batches are planned to compile few
    shapes on the first call and to pad least after a few (`plan`, `shape_cost`, `calls_made`)."""
    def __init__(self, model: CTCASR, params, stats: dict, mel_config: MelConfig, method: str = "greedy",
                 beam_width: int = 8, lm=None, lm_weight: float = DEFAULT_LM_WEIGHT,
                 length_bonus: float = DEFAULT_LENGTH_BONUS):
        """`lm`: a shallow-fusion scorer (`load_lm_scorer`), used by the beam search (method "beam") only."""
        if lm is not None and method != "beam":
            raise ConfigError("a language model needs beam search (a beam width above 1)")
        self.model, self.params, self.stats, self.mel_config = model, params, stats, mel_config
        self.method, self.beam_width = method, beam_width
        self.lm, self.lm_weight, self.length_bonus = lm, lm_weight, length_bonus
        self.table = character_table()
        self._forward = jax.jit(lambda p, x, m: model.apply({"params": p}, x, m, train=False))
        self._compiled = set()  # (rows, frames) shapes run so far (`log_probs`)
        # frames a new shape is worth in `plan`: None (default) SHAPE_COST_FRAMES halved per call made
        # (`synthesize.shape_cost_for`); an int fixes it (0: least padding; the CLI: SHAPE_COST_FRAMES)
        self.shape_cost = None
        self.calls_made = 0  # `transcribe_many` (so `transcribe`) and `log_probs_many` calls made
        # pauses of pause_seconds (0: none) are silenced (`silence_pauses`: None = when the model was trained without
        # noise augmentation); log-mels longer than chunk_seconds run in windows of at most that length (`windows`),
        # cut in those pauses or else overlapping by 2 x context_seconds
        self.chunk_seconds, self.context_seconds = CHUNK_SECONDS, CONTEXT_SECONDS
        self.pause_seconds = PAUSE_SECONDS
        self.silence_pauses = None

    @property
    def silences_pauses(self) -> bool:
        """Whether `log_probs_many` silences pauses: `silence_pauses` when set, else whether the model was trained
        without noise augmentation (`CTCASRConfig.noise_augment` is None)."""
        if self.silence_pauses is None:
            return self.model.config.noise_augment is None
        return bool(self.silence_pauses)

    @classmethod
    def from_workdir(cls, workdir, method: str = "greedy", beam_width: int = 8, lm_workdir=None,
                     lm_weight: float | None = None, length_bonus: float | None = None) -> "Transcriber":
        """`lm_workdir`: fuse that language model; weights left None come from the ASR workdir's report.json
        (what `experiments.ljspeech_asr --lm` chose on validation), else the defaults."""
        from mmspeech_jax.export import is_export

        workdir = Path(workdir)
        if is_export(workdir):
            return cls.from_export(workdir, method, beam_width, lm_workdir, lm_weight, length_bonus)
        config = read_workdir_config(workdir)
        if config.get("task") not in ("asr", "joint"):
            raise ConfigError(f"{workdir} is not an ASR workdir (config.json task is {config.get('task')!r})")
        if config["task"] == "joint" and config.get("mode") in ("tts", "speech_ssl"):
            raise ConfigError(f"{workdir} holds a joint model not trained for recognition (mode {config['mode']!r}); "
                              f"use an asr, asr_tts or pretrain workdir")
        if config["task"] == "asr":  # a joint workdir's symbols.json is its text path's; its CTC head is characters'
            character_table().check_compatible(SymbolTable.load(workdir / "symbols.json"))
        lm = load_lm_scorer(lm_workdir) if lm_workdir is not None else None
        tuned = {}
        if lm is not None and (workdir / "report.json").is_file():
            tuned = json.loads((workdir / "report.json").read_text())
        lm_weight = tuned.get("lm_weight", DEFAULT_LM_WEIGHT) if lm_weight is None else lm_weight
        length_bonus = tuned.get("length_bonus", DEFAULT_LENGTH_BONUS) if length_bonus is None else length_bonus
        params, step = restore_params(workdir)
        model_config = config["model"]
        if config["task"] == "joint":  # the recognizer is a CTCASR on the speech side's parameters
            from mmspeech_jax.models.joint_speech_text import asr_params

            model_config, params = model_config["speech"], asr_params(params)
        asr = cls(CTCASR(CTCASRConfig.from_dict(model_config)), params, config["stats"],
                  MelConfig(**config["features"]["mel"]), method, beam_width, lm, lm_weight, length_bonus)
        asr.checkpoint_step = step  # the newest step whose parameters restored (`workdir.restore_params`)
        return asr

    @classmethod
    def from_export(cls, directory, method: str = "greedy", beam_width: int = 8, lm_workdir=None,
                    lm_weight: float | None = None, length_bonus: float | None = None) -> "Transcriber":
        """An `mmspeech export` directory of an ASR workdir -> its transcriber, from the export's files alone (the
        feature statistics travel in its config.json). `lm_workdir` (a workdir or an LM export) as in
        `from_workdir`; the fusion weights default to DEFAULT_LM_WEIGHT / DEFAULT_LENGTH_BONUS."""
        from mmspeech_jax.export import load_exported, read_export_config

        config = read_export_config(directory)
        if config.get("task") not in ("asr", "joint"):
            raise ConfigError(f"{directory} is not an ASR export (config.json task is {config.get('task')!r})")
        if config["inference"].get("mode") in ("tts", "speech_ssl"):
            raise ConfigError(f"{directory} holds a joint model not trained for recognition (mode "
                              f"{config['inference']['mode']!r})")
        model, params, table, mel_config = load_exported(directory)
        if config["task"] == "joint":  # the recognizer: a CTCASR on the speech side's parameters
            from mmspeech_jax.models.joint_speech_text import asr_params

            model, params = CTCASR(model.config.speech), asr_params(params)
        else:
            character_table().check_compatible(table)
        lm = load_lm_scorer(lm_workdir) if lm_workdir is not None else None
        asr = cls(model, params, config["inference"]["stats"], mel_config, method, beam_width, lm,
                  DEFAULT_LM_WEIGHT if lm_weight is None else lm_weight,
                  DEFAULT_LENGTH_BONUS if length_bonus is None else length_bonus)
        asr.checkpoint_step = config["inference"].get("step")
        return asr

    def with_compute_dtype(self, compute_dtype: str) -> "Transcriber":
        """This transcriber computing in `compute_dtype` ("float32" or "bfloat16"; parameters unchanged, the CTC
        logits and log-softmax stay float32): a new `Transcriber` with the same parameters, statistics, decoding
        and LM. An unknown dtype is a one-line `ConfigError`."""
        from mmspeech_jax.config_tree import replace_everywhere

        model = CTCASR(replace_everywhere(self.model.config, compute_dtype=compute_dtype))
        asr = Transcriber(model, self.params, self.stats, self.mel_config, self.method, self.beam_width, self.lm,
                          self.lm_weight, self.length_bonus)
        asr.checkpoint_step = getattr(self, "checkpoint_step", None)
        asr.chunk_seconds, asr.context_seconds = self.chunk_seconds, self.context_seconds
        asr.pause_seconds, asr.silence_pauses = self.pause_seconds, self.silence_pauses
        return asr

    def _frames(self, seconds: float) -> int:
        return int(seconds * self.mel_config.sample_rate / self.mel_config.hop_samples)

    def windows(self, frames: int, log_mel: np.ndarray | None = None) -> list:
        """The long-form windows (`long_form.Window`: input frames [start, end), kept output frames) a log-mel of
        `frames` frames runs in: one when it fits in `chunk_seconds`; with the `log_mel` (frames, M) itself, cut in
        its pauses of `pause_seconds` (`long_form.pauses`) where it has them. One-line `ConfigError` for a
        `chunk_seconds` above MAX_SECONDS or too short for twice `context_seconds`, a too short context
        (`long_form.windows`) or a `pause_seconds` outside [0, `chunk_seconds`]."""
        return self._long_form(frames, log_mel)[1]

    def _long_form(self, frames: int, log_mel: np.ndarray | None) -> tuple[np.ndarray | None, list]:
        """(`pauses` of `log_mel` (frames,) bool, or None without it or with `pause_seconds` 0, and its `windows`)."""
        if not 0 < self.chunk_seconds <= MAX_SECONDS:
            raise ConfigError(f"chunk_seconds must be in (0, {MAX_SECONDS:g}], got {self.chunk_seconds}")
        if not 0 <= self.pause_seconds <= self.chunk_seconds:
            raise ConfigError(f"pause_seconds must be in [0, chunk_seconds = {self.chunk_seconds:g}], got "
                              f"{self.pause_seconds}")
        window = self._frames(self.chunk_seconds)
        quiet = None
        if log_mel is not None and self.pause_seconds > 0:
            quiet = pauses(log_mel, self._frames(self.pause_seconds))
        plan = windows(frames, self.model.config.subsampling, window, self._frames(self.context_seconds), quiet)
        return quiet, plan

    def log_probs(self, mels: list[np.ndarray], frames: int | None = None,
                  rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Log-mels (T_i, M) -> CTC log-probabilities (B, T', V) and output lengths (B,), B = len(mels): one forward
        pass (no windows; `log_probs_many` runs long log-mels in windows). The model runs on `rows` rows (default B;
        extra rows repeat the last mel and are dropped) of `frames` frames (default: the longest mel's multiple of
        FRAME_QUANTUM). A list that is empty or holds a wrong-shaped, non-finite or longer-than-MAX_SECONDS log-mel
        raises a one-line `FeatureError`."""
        if len(mels) == 0:
            raise FeatureError("no log-mels to transcribe")
        limit = self._frames(MAX_SECONDS) + 1
        mels = [check_log_mel(m, self.mel_config.n_mels, f"log-mel {i}", limit) for i, m in enumerate(mels)]
        longest = max(m.shape[0] for m in mels)
        frames = max(frames or 0, frame_rung(longest))
        rows = max(rows or 0, len(mels))
        x = np.zeros((rows, frames, mels[0].shape[1]), np.float32)
        mask = np.zeros((rows, frames), bool)
        for i in range(rows):  # rows past the mels repeat the last one (no all-padding row reaches the model)
            m = mels[min(i, len(mels) - 1)]
            x[i, : m.shape[0]], mask[i, : m.shape[0]] = m, True
        log_probs, out_mask = jax.device_get(self._forward(self.params, normalize_features(x, mask, self.stats), mask))
        self._compiled.add((rows, frames))
        return log_probs[: len(mels)], out_mask[: len(mels)].sum(-1)

    def plan(self, lengths, batch_size: int = 16) -> list[tuple[list[int], int, int]]:
        """Frame counts of many log-mels (or of long log-mels' windows) -> the groups `transcribe_many` runs them in:
        [(indices into `lengths`, rows, frames)]. Within runs of 16 x `batch_size` mels (in input order), mels of
        similar length run together (`synthesize.plan_groups`: at most `batch_size` mels a group, padded to a
        power-of-two number of rows and to a multiple of FRAME_QUANTUM frames; a shape not run before costs
        `synthesize.shape_cost_for(shape_cost, calls made)` frames: by default SHAPE_COST_FRAMES on the first
        `transcribe_many` / `log_probs_many` call, which then compiles few shapes, halved with each later call, so a
        long-running process reaches the least-padding plans)."""
        from mmspeech_jax.synthesize import CALL_COST_FRAMES, plan_groups, shape_cost_for

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        groups, window = [], 16 * batch_size
        shape_cost = shape_cost_for(self.shape_cost, self.calls_made)
        for first in range(0, len(lengths), window):
            for group, rows, frames in plan_groups(lengths[first:first + window], batch_size, frame_rung,
                                                    CALL_COST_FRAMES, shape_cost, self._compiled):
                groups.append(([first + k for k in group], rows, frames))
        return groups

    def _run_groups(self, mels: list[np.ndarray], batch_size: int, run) -> list:
        """`run(mels of one group, frames, rows)` -> one result per mel, over `plan`'s groups (planned a window at a
        time, so shapes one window ran are free in the next) -> the results in the order of `mels`; counts one call
        (`calls_made`)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        out = [None] * len(mels)
        window = 16 * batch_size
        for first in range(0, len(mels), window):
            chunk = mels[first:first + window]
            for group, rows, frames in self.plan([m.shape[0] for m in chunk], batch_size):
                for k, result in zip(group, run([chunk[k] for k in group], frames, rows)):
                    out[first + k] = result
        self.calls_made += 1
        return out

    def transcribe_many(self, mels: list[np.ndarray], batch_size: int = 16, timestamps: bool = False) -> list[dict]:
        """Many log-mels [(T_i, M)] (each at most MAX_AUDIO_SECONDS) -> `transcribe_mels`' rows, in order: the
        CTC log-probabilities of `log_probs_many` (windows for long ones, `plan`'s groups), each decoded alone."""
        return [self._decoded(lp[None], np.array([lp.shape[0]]), timestamps)[0]
                for lp in self.log_probs_many(mels, batch_size)]

    def log_probs_many(self, mels: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        """Many log-mels [(T_i, M)] -> CTC log-probabilities (T'_i, V) float32 each, in order, unpadded (for your own
        decoder; T'_i = `layers.subsampling.subsampled_length(T_i)`). With `pause_seconds` > 0 and
        `silences_pauses`, each log-mel's pauses of that length (`long_form.pauses`) are first set to the features'
        silence (`long_form.silenced`, less PAUSE_EDGE_SECONDS at each edge). A log-mel longer than `chunk_seconds` runs
        as the windows of `windows` (cut in those pauses where it has them), stitched; all windows and short log-mels
        run in the groups of `plan` (planned 16 x `batch_size` at a time, so shapes one window ran are free in the
        next). An empty list gives []; a wrong-shaped, non-finite or longer-than-MAX_AUDIO_SECONDS log-mel raises a
        one-line `FeatureError`."""
        limit = self._frames(MAX_AUDIO_SECONDS) + 1
        mels = [check_log_mel(m, self.mel_config.n_mels, f"log-mel {i}", limit) for i, m in enumerate(mels)]
        floor = float(np.log(self.mel_config.log_floor))
        pieces, plans = [], []
        for m in mels:
            quiet, plan = self._long_form(m.shape[0], m)
            if quiet is not None and quiet.any() and self.silences_pauses:
                m = silenced(m, quiet, floor, self._frames(self.pause_seconds) // 2 - self._frames(PAUSE_EDGE_SECONDS))
            pieces += [m[w.start:w.end] for w in plan]
            plans.append(plan)

        def run(group, frames, rows):
            log_probs, lengths = self.log_probs(group, frames, rows)
            return [lp[:n] for lp, n in zip(log_probs, lengths)]

        outputs, first, stitched = self._run_groups(pieces, batch_size, run), 0, []
        for plan in plans:
            stitched.append(stitch(outputs[first:first + len(plan)], plan, self.model.config.subsampling))
            first += len(plan)
        return stitched

    def transcribe_features(self, mels: list[np.ndarray]) -> list[str]:
        """Log-mels [(T_i, M)] -> one transcript (str) each, decoded with this transcriber's method
        (`transcribe_many`: long ones in windows). An empty list raises a one-line `FeatureError`."""
        if len(mels) == 0:
            raise FeatureError("no log-mels to transcribe")
        return [row["text"] for row in self.transcribe_many(mels)]

    def mel(self, path) -> np.ndarray:
        """An audio file (at most MAX_AUDIO_SECONDS) -> log-mel as the training features (resampled, mixed to
        mono). Audio errors: one line."""
        audio, _ = load_audio(path, self.mel_config.sample_rate, max_seconds=MAX_AUDIO_SECONDS)
        return padded_log_mel_and_energy(audio, self.mel_config)[0]

    def mel_from_audio(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """A float waveform (S,) at `sample_rate` -> log-mel as the training features (one-line errors for an empty,
        multi-dimensional or non-finite waveform)."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise EmptyAudioError(f"expected a non-empty mono waveform of shape (S,), got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise FeatureError("the waveform holds NaN or infinite samples")
        if sample_rate != self.mel_config.sample_rate:
            audio = resample(np.asarray(audio, np.float32), sample_rate, self.mel_config.sample_rate)
        return padded_log_mel_and_energy(np.asarray(audio, np.float32), self.mel_config)[0]

    def transcribe(self, items, batch_size: int = 16, timestamps: bool = False) -> list[dict]:
        """Audio files and/or (waveform (S,) float, sample_rate) pairs -> one {"text": str} per item, in order, run
        through the model at most `batch_size` at a time (`transcribe_many`: mels of similar length together). With
        `timestamps`, also "chars" and "words": [{"char"/"word", "start", "end"}] in seconds
        (`decoding/timestamps.py`: the best CTC path of the decoded text). An unreadable item raises its one-line
        error before any is decoded."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        mels = [self.mel(item) if isinstance(item, (str, Path)) else self.mel_from_audio(*item) for item in items]
        return self.transcribe_many(mels, batch_size, timestamps)

    def transcribe_mels(self, mels: list[np.ndarray], timestamps: bool = False, frames: int | None = None,
                        rows: int | None = None) -> list[dict]:
        """Log-mels [(T_i, M)] (one batch, padded as `log_probs` says) -> [{"text"} (+ "chars", "words" with
        `timestamps`)], as `transcribe`."""
        log_probs, lengths = self.log_probs(mels, frames, rows)
        return self._decoded(log_probs, lengths, timestamps)

    def _decoded(self, log_probs, lengths, timestamps: bool) -> list[dict]:
        """(B, T', V) log-probabilities and (B,) lengths -> [{"text"} (+ "chars", "words")], decoded."""
        from mmspeech_jax.decoding.timestamps import frame_times
        from mmspeech_jax.decoding.timestamps import timestamps as label_times

        ids = decode_batch(log_probs, lengths, self.method, self.beam_width, lm=self.lm, lm_weight=self.lm_weight,
                           length_bonus=self.length_bonus if self.lm is not None else 0.0)
        rows = [{"text": " ".join("".join(self.table.lookup(seq)).split())} for seq in ids]  # one space between words
        if timestamps:
            factor = self.model.config.subsampling
            seconds, offset = frame_times(factor, SUBSAMPLING_FACTORS[factor][0],
                                          self.mel_config.hop_samples / self.mel_config.sample_rate)
            for row, seq, lp, length in zip(rows, ids, log_probs, lengths):
                row.update(label_times(lp, int(length), seq, self.table.symbols, seconds, offset))
        return rows

    def transcribe_file(self, path) -> str:
        """An audio file (any rate, mono or stereo) -> its transcript; audio errors are one line."""
        return self.transcribe_features([self.mel(path)])[0]
