"""Text -> speech with a trained FastSpeech2 workdir (or an export), through Griffin-Lim or a neural vocoder
(`Synthesizer.use_vocoder`).

    from mmspeech_jax.synthesize import Synthesizer
    tts = Synthesizer.from_workdir("workdir/ljspeech_tts")
    audio, sample_rate = tts.synthesize("Hello there.")

A HyperSpeech workdir (experiments.multispeaker_tts) is conditioned per call: `speaker=` (a training voice's id)
and/or `reference=` (a log-mel from `reference_mel(path)`, a few seconds of any voice):

    tts = Synthesizer.from_workdir("workdir/multispeaker_tts")
    audio, rate = tts.synthesize("Hello there.", speaker=2)
    audio, rate = tts.synthesize("Hello there.", reference=tts.reference_mel("someone.wav"))

Shapes are padded to a small ladder (tokens to a multiple of 32, frames to 256 / 512 / ... / 8192), so a session
compiles a handful of times, not once per sentence. A batch runs first with a decoder of 8 frames, which gives the
predicted durations (they do not depend on the padded length), then at the rung that holds the longest row
(`generate_fitting`), never cut short; one longer than the top rung (95 s at 22.05 kHz) raises `TextTooLongError`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig, check_log_mel
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.audio.io import load_audio, peak_normalized
from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
from mmspeech_jax.errors import ConfigError, EmptyAudioError, TextTooLongError
from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from mmspeech_jax.models.hyperspeech import HyperSpeech, HyperSpeechConfig
from mmspeech_jax.models.variance_adaptor import Controls
from mmspeech_jax.text.symbols import SymbolTable
from mmspeech_jax.text.tokenizer import make_tokenizer
from mmspeech_jax.workdir import read_workdir_config, restore_params

# Padded frame lengths, each at most 1.5x the one below (a batch pads to at most 1.5x its longest row); 8192 frames:
# 95 s at 22.05 kHz / hop 256.
FRAME_LADDER = (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)
PROBE_FRAMES = 8  # the first pass only predicts durations: its decoder runs on this many frames


def frame_rung(frames: float) -> int:
    """The smallest padded frame length of the ladder that holds `frames` (the top one if none does)."""
    return next((f for f in FRAME_LADDER if f >= frames), FRAME_LADDER[-1])


def generate_fitting(generate, tokens, token_mask, hop_seconds: float):
    """`generate(tokens, token_mask, max_frames) -> (mel, frame_mask, durations, ...)` run at the smallest ladder
    rung that holds every row's predicted length: a first pass at `PROBE_FRAMES` frames gives the durations (they do
    not depend on max_frames; the decoder's work there is negligible), the second runs at the rung that holds the
    longest row. Never returns a truncated row: past the top rung, `TextTooLongError`. (It used to guess 12 frames
    per token first, decoding 2-3x the frames a sentence needs; benchmarks/inference.py.)"""
    total = int(np.asarray(generate(tokens, token_mask, PROBE_FRAMES)[2]).sum(-1).max())
    if total > FRAME_LADDER[-1]:
        raise TextTooLongError(f"the model predicts {total} frames ({total * hop_seconds:.0f} s) for this text, more "
                               f"than the {FRAME_LADDER[-1]} synthesized at once: split the text")
    return generate(tokens, token_mask, frame_rung(total))


REFERENCE_SECONDS = (0.5, 30.0)  # usable reference audio


def tts_model(task: str, model_config: dict):
    """The module a TTS-capable workdir's config.json describes: FastSpeech2 ("tts"), HyperSpeech ("hyperspeech") or
    the joint speech–text model ("joint"), each with FastSpeech2's `generate` signature."""
    if task == "hyperspeech":
        return HyperSpeech(HyperSpeechConfig.from_dict(model_config))
    if task == "joint":
        from mmspeech_jax.models.joint_speech_text import JointConfig, JointSpeechText

        return JointSpeechText(JointConfig.from_dict(model_config))
    return FastSpeech2(FastSpeech2Config.from_dict(model_config))


class Synthesizer:
    """Text -> speech with a trained FastSpeech2 or HyperSpeech: normalization and tokenization, `generate` at padded
    shapes (tokens to multiples of 32, frames to a ladder, so a session compiles a few times), Griffin-Lim or the
    neural vocoder set by `use_vocoder`.
    `from_workdir` (a training workdir or an export) and `from_export` build one; `mel(text)` -> (T, M) float32,
    `synthesize(text)` -> (audio (S,) float32, sample rate)."""
    def __init__(self, model, params, table: SymbolTable, mel_config: MelConfig,
                 tokenizer_kind: str):
        self.model, self.params, self.mel_config = model, params, mel_config
        self._hop_seconds = mel_config.hop_samples / mel_config.sample_rate
        self.tokenizer = make_tokenizer(tokenizer_kind)
        self.tokenizer.table.check_compatible(table)
        self.vocoder = None  # `use_vocoder`: a neural vocoder instead of Griffin-Lim
        self.conditioned = isinstance(model, HyperSpeech)
        if self.conditioned:
            generate = lambda p, t, m, n, c, v, s, r, rm: model.apply(
                {"params": p}, t, m, n, s, r, rm, controls=c, variance=v, method=HyperSpeech.generate)
        else:
            generate = lambda p, t, m, n, c, v: model.apply({"params": p}, t, m, n, controls=c, variance=v,
                                                            method=type(model).generate)
        jitted = jax.jit(generate, static_argnums=(3, 4, 5))
        self._generate = lambda p, t, m, n, c, *condition: jitted(p, t, m, n, c, False, *condition)
        self._generate_variance = lambda p, t, m, n, c, *condition: jitted(p, t, m, n, c, True, *condition)

    @classmethod
    def from_workdir(cls, workdir) -> "Synthesizer":
        """A TTS or HyperSpeech training workdir -> its synthesizer; any other workdir (ASR, LM) is a one-line
        `ConfigError` before anything loads."""
        from mmspeech_jax.export import is_export

        workdir = Path(workdir)
        if is_export(workdir):
            return cls.from_export(workdir)
        config = read_workdir_config(workdir)
        task = config.get("task", "tts")
        if task not in ("tts", "hyperspeech", "joint"):
            raise ConfigError(f"{workdir} is not a TTS workdir (config.json task is {task!r})")
        if task == "joint" and config.get("mode") in ("asr", "speech_ssl"):
            raise ConfigError(f"{workdir} holds a joint model trained for recognition only (mode "
                              f"{config['mode']!r}): its synthesis path is untrained; use a tts, asr_tts or "
                              f"pretrain workdir")
        params, step = restore_params(workdir)
        model = tts_model(task, config["model"])
        tts = cls(model, params,
                  SymbolTable.load(workdir / "symbols.json"), MelConfig(**config["features"]["mel"]),
                  config["features"]["tokenizer"])
        tts.checkpoint_step = step  # the newest step whose parameters restored (`workdir.restore_params`)
        return tts

    @classmethod
    def from_export(cls, directory) -> "Synthesizer":
        """An `mmspeech export` directory of a TTS or HyperSpeech workdir -> its synthesizer, from the export's files
        alone (one-line errors for an incomplete export, another task, or an export made before exports carried
        their tokenizer)."""
        from mmspeech_jax.export import load_exported, read_export_config

        config = read_export_config(directory)
        if config.get("task", "tts") not in ("tts", "hyperspeech", "joint"):
            raise ConfigError(f"{directory} is not a TTS export (config.json task is {config.get('task')!r})")
        if config["inference"].get("mode") in ("asr", "speech_ssl"):
            raise ConfigError(f"{directory} holds a joint model trained for recognition only (mode "
                              f"{config['inference']['mode']!r}): its synthesis path is untrained")
        model, params, table, mel_config = load_exported(directory)
        tts = cls(model, params, table, mel_config, config["inference"]["tokenizer"])
        tts.checkpoint_step = config["inference"].get("step")
        return tts

    def reference_mel(self, path) -> np.ndarray:
        """An audio file -> log-mel (T, M) to condition a HyperSpeech model on its voice. Unreadable, empty, too
        short or too long audio raises a one-line `AudioError`."""
        low, high = REFERENCE_SECONDS
        audio, rate = load_audio(path, self.mel_config.sample_rate, max_seconds=high)
        if audio.size < low * rate:
            raise EmptyAudioError(f"{path}: reference audio is {audio.size / rate:.2f} s; need at least {low} s of speech")
        return padded_log_mel_and_energy(audio, self.mel_config)[0]

    def condition_inputs(self, speaker=None, reference=None):
        """The generate() conditioning arrays for a speaker id and/or reference log-mel (validated; one-line errors)."""
        c = self.model.config
        if not self.conditioned:
            if speaker is not None or reference is not None:
                raise ConfigError("this workdir holds a single-voice FastSpeech2: --speaker/--reference need a "
                                  "multi-speaker (HyperSpeech) workdir")
            return ()
        if speaker is None and reference is None:
            raise ConfigError("this multi-speaker workdir needs a voice: give a speaker id or a reference audio file")
        if speaker is not None and not (c.num_speakers and 0 <= int(speaker) < c.num_speakers):
            raise ConfigError(f"unknown speaker id {speaker}: this model knows speakers 0-{c.num_speakers - 1}; "
                              "condition an unseen voice with a reference audio file instead")
        speaker_ids = np.array([-1 if speaker is None else int(speaker)], np.int32)
        if reference is None:
            return speaker_ids, np.zeros((1, 256, c.backbone.n_mels), np.float32), np.zeros((1, 256), bool)
        reference = check_log_mel(reference, c.backbone.n_mels, "reference log-mel")
        frames = -(-reference.shape[0] // 256) * 256
        ref = np.zeros((1, frames, reference.shape[1]), np.float32)
        ref[0, : reference.shape[0]] = reference
        return speaker_ids, ref, np.arange(frames)[None] < reference.shape[0]

    def mel(self, text: str, controls: Controls = Controls(), *, speaker: int | None = None,
            reference: np.ndarray | None = None) -> np.ndarray:
        """text -> log-mel (T, M). Raises the text errors of `normalize_text` / the tokenizer (one line), and a
        `ConfigError` for a speaker id the model does not know."""
        condition = self.condition_inputs(speaker, reference)
        ids = self.tokenizer.encode(text)
        n = -(-ids.size // 32) * 32
        tokens = np.zeros((1, n), np.int32)
        tokens[0, : ids.size] = ids
        mask = tokens > 0
        mel, frame_mask, _ = generate_fitting(
            lambda t, m, frames: self._generate(self.params, t, m, frames, controls, *condition), tokens, mask,
            self._hop_seconds)
        return np.asarray(mel[0, : max(int(frame_mask[0].sum()), 2)])

    def synthesize_batch(self, texts: list[str], batch_size: int = 8, controls: Controls = Controls(), *,
                         speaker: int | None = None, reference: np.ndarray | None = None,
                         griffin_lim_iters: int = 60) -> list[dict]:
        """Texts -> one dict per text, in order: "audio" (S,) float32 and "sample_rate" (the vocoder's), "mel" (T, M),
        "symbols" (the N tokens spoken), "durations" (N,) int frames per token, "pitch" and "energy" (the model's
        predictions, z-scored by the corpus statistics: (N,) at token level, (T,) at frame level). The model runs
        `batch_size` texts at a time, texts of similar length together (sorted by token count; results come back
        in the input order), padded to the longest (tokens to a multiple of 32, frames to the ladder rung that holds
        every row's predicted length). A text that does not normalize or tokenize raises its one-line
        error before any is synthesized."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        condition = self.condition_inputs(speaker, reference)
        encoded = [self.tokenizer.encode(text) for text in texts]
        order = sorted(range(len(encoded)), key=lambda k: encoded[k].size)  # similar lengths share a batch
        results = [None] * len(encoded)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids = [encoded[k] for k in rows]
            n = -(-max(i.size for i in ids) // 32) * 32
            # A short last batch of many is filled with copies of its last text (outputs dropped): one batch shape
            # for the whole call, so it compiles no extra programs for the remainder.
            filled = batch_size if len(order) > batch_size else len(ids)
            tokens = np.zeros((filled, n), np.int32)
            for row, row_ids in enumerate(ids + [ids[-1]] * (filled - len(ids))):
                tokens[row, : row_ids.size] = row_ids
            batch_condition = tuple(np.repeat(np.asarray(c), filled, axis=0) for c in condition)
            out = generate_fitting(
                lambda t, m, frames: self._generate_variance(self.params, t, m, frames, controls, *batch_condition),
                tokens, tokens > 0, self._hop_seconds)
            mel, frame_mask, durations, variance = jax.device_get(out)
            token_level = getattr(self.model.config, "backbone", self.model.config).variance_level == "token"
            mels = [np.asarray(mel[row, : max(int(frame_mask[row].sum()), 2)]) for row in range(len(ids))]
            if self.vocoder is not None:  # the whole batch through the vocoder at once, at the call's batch shape
                padded = mels + [mels[-1]] * (filled - len(mels))  # the call's one batch shape, as above
                audios = [peak_normalized(a) for a in self.vocoder.batch(padded, batch_size=filled)[: len(mels)]]
            else:
                audios = [self.vocode(m, griffin_lim_iters=griffin_lim_iters)[0] for m in mels]
            for row, row_ids in enumerate(ids):
                t = mels[row].shape[0]
                cut = lambda x: np.asarray(x[row, : row_ids.size] if token_level else x[row, :t])
                audio, rate = audios[row], self.mel_config.sample_rate
                results[rows[row]] = {"audio": audio, "sample_rate": rate, "mel": mels[row],
                                      "symbols": self.tokenizer.table.lookup(row_ids),
                                      "durations": np.asarray(durations[row, : row_ids.size]),
                                      "pitch": cut(variance["pitch"]), "energy": cut(variance["energy"])}
        return results

    def synthesize(self, text: str, controls: Controls = Controls(), *, speaker: int | None = None,
                   reference: np.ndarray | None = None, griffin_lim_iters: int = 60):
        """text -> (float32 audio (S,), sample_rate)."""
        return self.vocode(self.mel(text, controls, speaker=speaker, reference=reference),
                           griffin_lim_iters=griffin_lim_iters)

    def use_vocoder(self, vocoder) -> "Synthesizer":
        """Speak through `vocoder` (a `vocode.Vocoder`, or None for Griffin-Lim) from now on; a one-line
        `ConfigError` when it inverts other mel features than this model makes. Returns self."""
        if vocoder is not None:
            vocoder.check_mel_config(self.mel_config)
        self.vocoder = vocoder
        return self

    def vocode(self, log_mel: np.ndarray, *, griffin_lim_iters: int = 60):
        """(T, M) log mel -> (float32 audio (S,) peak-normalized to 0.9, sample_rate), through the neural vocoder
        when one is set (`use_vocoder`), else Griffin-Lim (`griffin_lim_iters` iterations)."""
        if self.vocoder is not None:
            return peak_normalized(self.vocoder(log_mel)), self.mel_config.sample_rate
        wave = log_mel_to_waveform(log_mel, jax.random.PRNGKey(0), self.mel_config, n_iter=griffin_lim_iters)
        return peak_normalized(wave), self.mel_config.sample_rate


class VoicedSynthesizer:
    """A `Synthesizer` bound to one voice (speaker id and/or reference log-mel), validated once, with the same
    `synthesize` / `vocode` interface, so voice-agnostic tools (`evaluate_tts`, the CLI's line loop) use it as is."""

    def __init__(self, tts: Synthesizer, speaker: int | None = None, reference: np.ndarray | None = None):
        tts.condition_inputs(speaker, reference)
        self.tts, self.speaker, self.reference = tts, speaker, reference

    def synthesize(self, text: str, controls: Controls = Controls(), *, griffin_lim_iters: int = 60):
        """text -> (float32 audio (S,), sample_rate) in the bound voice."""
        return self.tts.synthesize(text, controls, speaker=self.speaker, reference=self.reference,
                                   griffin_lim_iters=griffin_lim_iters)

    def synthesize_batch(self, texts: list[str], batch_size: int = 8, controls: Controls = Controls(), *,
                         griffin_lim_iters: int = 60) -> list[dict]:
        """`Synthesizer.synthesize_batch` in the bound voice."""
        return self.tts.synthesize_batch(texts, batch_size, controls, speaker=self.speaker, reference=self.reference,
                                         griffin_lim_iters=griffin_lim_iters)

    def vocode(self, log_mel: np.ndarray, *, griffin_lim_iters: int = 60):
        """A log-mel (T, M) -> (float32 audio (S,), sample_rate) by the synthesizer's vocoder (or Griffin-Lim)."""
        return self.tts.vocode(log_mel, griffin_lim_iters=griffin_lim_iters)
