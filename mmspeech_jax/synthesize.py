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

Synthesis runs in two halves (each model's `prepare` and `render`): `prepare` encodes the text and predicts the
durations, so every sentence's frame count is known before any mel frame is decoded; `render` then decodes rows
of similar length together at a padded frame length from `FRAME_LADDER` (`render_plan` chooses the groups that
decode the fewest padded frames, weighed against compiling new shapes). Tokens pad to a multiple of 16, batches
to a power of two, frames to the ladder, so a session compiles a bounded set of programs, not one per sentence; nothing is cut short, and a sentence longer
than the top rung (95 s at 22.05 kHz) raises `TextTooLongError`.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig, check_log_mel
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.audio.io import load_audio, clip_protected
from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
from mmspeech_jax.errors import ConfigError, EmptyAudioError, TextTooLongError
from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from mmspeech_jax.models.hyperspeech import HyperSpeech, HyperSpeechConfig
from mmspeech_jax.models.variance_adaptor import Controls
from mmspeech_jax.text.symbols import SymbolTable
from mmspeech_jax.text.tokenizer import make_tokenizer
from mmspeech_jax.workdir import read_workdir_config, restore_params

# Padded frame lengths: multiples of 64 up to 1 024, of 128 up to 2 048, of 256 up to 4 096 and of 512 up to 8 192
# (95 s at 22.05 kHz / hop 256). Above 512 frames a row pads by at most 12.5 %; below, by at most 64 frames.
FRAME_LADDER = (tuple(range(128, 1024, 64)) + tuple(range(1024, 2048, 128)) + tuple(range(2048, 4096, 256))
                + tuple(range(4096, 8192 + 1, 512)))
CALL_COST_FRAMES = 512  # a render group's fixed cost in decoded frames: its dispatch
# A shape not compiled yet, in decoded frames, when a plan expects to run it once (the CLI, an object's first call):
# compiling (or loading from the persistent cache) a render program costs 0.3-1.4 s on 2 CPU cores, 8 000-38 000
# padded frames of the default model's decoding and ~2 000-8 000 of the ESPnet-size `ljspeech` preset's
# (benchmarks/RESULTS.md, 2026-12-06); this errs towards decoding. Many calls in one process amortize their
# compilations (`shape_cost_for`); counting padding only (a shape cost of 0) kept `benchmarks.inference`'s steady
# state 13-16 % faster.
SHAPE_COST_FRAMES = 4096


def shape_cost_for(setting: int | None, calls_made: int, full: int = SHAPE_COST_FRAMES) -> int:
    """The cost of compiling a new shape, in padded frames (or tokens), for a plan made after `calls_made` earlier
    calls of one `Synthesizer`, `Transcriber` or `Vocoder`: `setting` when it is an int (fixed; 0 plans the least
    padding), else (None, the default) `full` halved once per call made, floored (`full` >> `calls_made`). A first
    call (a notebook's first cell, a one-off script) compiles few shapes, padding rows further to share them; a
    process that keeps calling reaches the least-padding plans, the fastest once compiled, within a few calls (at
    4 096 frames: at most a frame rung's step of 64 from the 7th call, 0 from the 14th)."""
    if setting is not None:
        return int(setting)
    return int(full) >> min(int(calls_made), 62)


def frame_rung(frames: float) -> int:
    """The smallest padded frame length of the ladder that holds `frames` (the top one if none does)."""
    return next((f for f in FRAME_LADDER if f >= frames), FRAME_LADDER[-1])


def batch_sizes(max_batch: int) -> tuple[int, ...]:
    """The batch sizes a render call may pad to: the powers of two below `max_batch`, and `max_batch`."""
    return tuple(sorted({2 ** k for k in range(max_batch.bit_length()) if 2 ** k < max_batch} | {max_batch}))


TOKEN_STEP = 16  # token ids pad to a multiple of this
CALL_COST_TOKENS = 128  # a prepare group's fixed cost in encoded tokens: its dispatch
SHAPE_COST_TOKENS = 2048  # a prepare shape not compiled yet, in encoded tokens (its program is half a render's)
FIRST_CALL_SHAPE_COSTS = (SHAPE_COST_TOKENS, SHAPE_COST_FRAMES)  # `synthesize_ids`' shape_costs for one-shot use


def synthesis_shape_costs(setting: tuple[int, int] | None, calls_made: int) -> tuple[int, int]:
    """`synthesize_ids`' shape_costs (tokens, frames) after `calls_made` calls: a fixed `setting` pair as it is, else
    (None) `FIRST_CALL_SHAPE_COSTS` each halved per call made (`shape_cost_for`)."""
    if setting is not None:
        return int(setting[0]), int(setting[1])
    return (shape_cost_for(None, calls_made, SHAPE_COST_TOKENS), shape_cost_for(None, calls_made, SHAPE_COST_FRAMES))


def plan_groups(lengths, max_batch: int, rung, call_cost: int, shape_cost: int = 0,
                compiled=frozenset()) -> list[tuple[list[int], int, int]]:
    """Rows of `lengths[i]` -> groups [(row indices, padded batch size, padded length)] that cover every row once,
    whole, at the least cost. A group of k rows pads to the smallest of `batch_sizes(max_batch)` >= k and to a
    rung at least `rung(its longest row)`; it costs batch x padded length + `call_cost`, and each distinct shape
    (batch, padded length) the plan uses that is not in `compiled` (shapes compiled already) costs `shape_cost`
    once: its compilation. A group may therefore pad past its own rung, to share another group's shape.
    Some optimal plan takes consecutive rows in order of length, with padded lengths in the same order (give the
    groups' shapes to the rows in sorted order: no row needs more than its slot), so a dynamic programme over the
    sorted rows finds it; its state is the last group's padded length and the batch sizes used at that length."""
    if max_batch < 1:
        raise ConfigError(f"batch_size must be >= 1, got {max_batch}")
    lengths = [int(n) for n in lengths]
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    sizes = batch_sizes(max_batch)
    needed = [rung(lengths[k]) for k in order]
    compiled = frozenset(compiled)
    # padded lengths worth choosing: a row's own rung, or (with a shape cost) any row's or compiled shape's above it
    candidates = sorted(set(needed) | {length for _, length in compiled}) if shape_cost else []
    best = [{} for _ in range(len(order) + 1)]  # best[end][(padded, sizes used at it)] = (cost, back pointer)
    best[0][(0, frozenset())] = (0, None)
    for end in range(1, len(order) + 1):
        choices = [p for p in candidates if p >= needed[end - 1]] or [needed[end - 1]]
        for begin in range(max(0, end - max_batch), end):
            rows = next(b for b in sizes if b >= end - begin)
            for (last, used), (cost, _) in best[begin].items():
                for padded in choices:
                    if padded < last:
                        continue
                    used_before = used if padded == last else frozenset()
                    new_shape = rows not in used_before and (rows, padded) not in compiled
                    total = cost + rows * padded + call_cost + (shape_cost if new_shape else 0)
                    # without a shape cost the sizes used need no tracking: one state per padded length
                    used_now = used_before | {rows} if shape_cost else frozenset()
                    key = (padded, used_now)
                    if key not in best[end] or total < best[end][key][0]:
                        best[end][key] = (total, (begin, rows, padded, (last, used)))
    plan, end = [], len(order)
    state = min(best[end], key=lambda key: best[end][key][0]) if order else None
    while end:
        begin, rows, padded, previous = best[end][state][1]
        plan.append((order[begin:end], rows, padded))
        end, state = begin, previous
    return plan[::-1]


def render_plan(frames, max_batch: int, compiled=frozenset(), shape_cost: int = 0) -> list[tuple[list[int], int, int]]:
    """Rows that need `frames[i]` mel frames -> render groups [(row indices, padded batch size, frame rung)]:
    `plan_groups` with the rungs of `FRAME_LADDER`, a call cost of `CALL_COST_FRAMES` and `shape_cost` for each
    shape (batch, rung) not in `compiled`. Rows past the top rung raise `TextTooLongError` (one line) instead
    of being cut."""
    frames = [int(f) for f in frames]
    if frames and max(frames) > FRAME_LADDER[-1]:
        raise TextTooLongError(f"the model predicts {max(frames)} frames for this text, more than the "
                               f"{FRAME_LADDER[-1]} synthesized at once: split the text")
    return plan_groups(frames, max_batch, frame_rung, CALL_COST_FRAMES, shape_cost, compiled)


def token_rung(tokens: int) -> int:
    """Padded token length: the multiple of `TOKEN_STEP` that holds `tokens` (at least one step)."""
    return max(-(-int(tokens) // TOKEN_STEP), 1) * TOKEN_STEP


def padded_ids(ids: list[np.ndarray], rows: int, length: int | None = None) -> np.ndarray:
    """Token id arrays -> (rows, length) int32, 0-padded (length: `token_rung` of the longest by default); rows
    past len(ids) repeat the last array (their outputs are dropped: a short batch keeps a compiled shape)."""
    length = token_rung(max(i.size for i in ids)) if length is None else length
    tokens = np.zeros((rows, length), np.int32)
    for row, row_ids in enumerate(ids + [ids[-1]] * (rows - len(ids))):
        tokens[row, : row_ids.size] = row_ids
    return tokens


def synthesize_ids(prepare, render, frames_needed, encoded: list[np.ndarray], batch_size: int,
                   token_level: bool = True, compiled: dict | None = None,
                   shape_costs: tuple[int, int] = (0, 0)) -> list[dict]:
    """Batch synthesis by a model's two halves, bound to their parameters and controls:
    `prepare(tokens (B, N) int32, token_mask (B, N)) -> (h (B, N, D), durations (B, N) int)`,
    `render(h, token_mask, durations, max_frames) -> (mel (B, T, M), frame_mask (B, T), durations, {"pitch",
    "energy"})` and `frames_needed(durations (N,)) -> int` (the mel frames one row makes).
    Token id arrays (N_i,) -> one dict per array, in order: "mel" (T_i, M) float32 (at least 2 frames),
    "durations" (N_i,) int, "pitch" and "energy" ((N_i,) with `token_level`, else (T_i,)).
    Both halves run on groups of similar length (`plan_groups`: tokens padded by `token_rung`, frames by the
    ladder, batches to powers of two), within windows of 16 x `batch_size` texts taken in order of length, so host
    memory stays bounded for long lists. `compiled`: {"prepare": set, "render": set} of the shapes (batch, padded
    length; render's also its token length) each half has run at before, which the plans reuse for free; the shapes
    run here are added to it (a new dict when None). `shape_costs`: (tokens, frames) that compiling a new prepare /
    render shape is worth in the plans; (0, 0) plans the least padding (for many calls in one process),
    `FIRST_CALL_SHAPE_COSTS` few shapes (for a process that synthesizes once: the CLI)."""
    compiled = {"prepare": set(), "render": set()} if compiled is None else compiled
    results = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda k: encoded[k].size)
    window = 16 * batch_size
    for first in range(0, len(order), window):
        rows = order[first:first + window]
        prepared = [None] * len(rows)
        for group, batch, length in plan_groups([encoded[k].size for k in rows], batch_size, token_rung,
                                                CALL_COST_TOKENS, shape_costs[0], compiled["prepare"]):
            ids = [encoded[rows[k]] for k in group]
            tokens = padded_ids(ids, batch, length)
            h, durations = jax.device_get(prepare(tokens, tokens > 0))
            compiled["prepare"].add((batch, length))
            for row, k in enumerate(group):
                prepared[k] = (h[row, : ids[row].size], durations[row, : ids[row].size])
        frames = [int(frames_needed(np.asarray(d))) for _, d in prepared]
        # with a shape cost, one token length for all the window's render calls (so their shapes can be shared);
        # without, each group's own (and the plan ignores what is compiled)
        n = token_rung(max(d.size for _, d in prepared))
        reuse = {(batch, rung) for batch, rung, tokens in compiled["render"] if tokens == n}
        for group, batch, rung in render_plan(frames, batch_size, reuse, shape_costs[1]):
            members = [prepared[k] for k in group] + [prepared[group[-1]]] * (batch - len(group))
            if not shape_costs[1]:
                n = token_rung(max(d.size for _, d in members))
            h = np.zeros((batch, n, members[0][0].shape[-1]), members[0][0].dtype)
            durations = np.zeros((batch, n), np.int32)
            for row, (row_h, row_d) in enumerate(members):
                h[row, : row_h.shape[0]], durations[row, : row_d.size] = row_h, row_d
            mask = np.arange(n)[None] < np.array([d.size for _, d in members])[:, None]
            mel, frame_mask, _, variance = jax.device_get(render(h, mask, durations, rung))
            compiled["render"].add((batch, rung, n))
            for row, k in enumerate(group):
                t, size = max(int(frame_mask[row].sum()), 2), prepared[k][1].size
                cut = lambda x: np.asarray(x[row, :size] if token_level else x[row, :t])
                results[rows[k]] = {"mel": np.asarray(mel[row, :t]), "durations": np.asarray(durations[row, :size]),
                                    "pitch": cut(variance["pitch"]), "energy": cut(variance["energy"])}
    return results


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
    shapes (tokens to multiples of 16, frames to a ladder, so a session compiles a few times), Griffin-Lim or the
    neural vocoder set by `use_vocoder`.
    `from_workdir` (a training workdir or an export) and `from_export` build one; `mel(text)` -> (T, M) float32,
    `synthesize(text)` -> (audio (S,) float32, sample rate). Batches are planned to compile few shapes on the first
    call and to pad least after a few (`shape_costs`, `calls_made`: `shape_cost_for`)."""
    def __init__(self, model, params, table: SymbolTable, mel_config: MelConfig,
                 tokenizer_kind: str):
        self.model, self.params, self.mel_config = model, params, mel_config
        self._hop_seconds = mel_config.hop_samples / mel_config.sample_rate
        self.tokenizer = make_tokenizer(tokenizer_kind)
        self.tokenizer.table.check_compatible(table)
        self.vocoder = None  # `use_vocoder`: a neural vocoder instead of Griffin-Lim
        self._compiled = {"prepare": set(), "render": set()}  # shapes run so far (`synthesize_ids`)
        # (tokens, frames) a new prepare / render shape is worth in the plans: None (default) FIRST_CALL_SHAPE_COSTS
        # halved per call made (`shape_cost_for`); a fixed pair otherwise ((0, 0): least padding)
        self.shape_costs = None
        self.calls_made = 0  # `synthesize_ids` calls made
        self.conditioned = isinstance(model, HyperSpeech)
        kind = type(model)
        generate = lambda p, t, m, n, c, v, *condition: model.apply(
            {"params": p}, t, m, n, *condition, controls=c, variance=v, method=kind.generate)
        jitted = jax.jit(generate, static_argnums=(3, 4, 5))
        # One pass at a given length (tests and notebooks compare the two halves against it).
        self._generate = lambda p, t, m, n, c, *condition: jitted(p, t, m, n, c, False, *condition)
        self._prepare = jax.jit(lambda p, t, m, c, *condition: model.apply(
            {"params": p}, t, m, *condition, controls=c, method=kind.prepare), static_argnums=3)
        self._render = jax.jit(lambda p, h, m, d, n, c, *condition: model.apply(
            {"params": p}, h, m, d, n, *condition, controls=c, variance=True, method=kind.render),
            static_argnums=(4, 5))
        if isinstance(model, (FastSpeech2, HyperSpeech)):
            self._frames_needed = lambda durations: durations.sum(-1)
        else:  # the joint model's mel is offset by its frontend's centre
            from mmspeech_jax.models.joint_speech_text import mel_frame_count

            self._frames_needed = lambda durations: mel_frame_count(model.config, durations)

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

    def with_compute_dtype(self, compute_dtype: str) -> "Synthesizer":
        """This synthesizer computing in `compute_dtype` ("float32" or "bfloat16"; the parameters stay as they are,
        float32): a new `Synthesizer` on the same parameters, tokenizer and vocoder. For GPUs and TPUs: on the CPU
        (XLA, AVX512-BF16) bfloat16 synthesis measured 1.4x slower than float32 (benchmarks/RESULTS.md). Outputs
        differ from float32 by bfloat16 rounding. An unknown dtype is a one-line `ConfigError`."""
        from mmspeech_jax.config_tree import replace_everywhere

        model = type(self.model)(replace_everywhere(self.model.config, compute_dtype=compute_dtype))
        tts = Synthesizer(model, self.params, self.tokenizer.table, self.mel_config, self.tokenizer.kind)
        tts.vocoder, tts.checkpoint_step = self.vocoder, getattr(self, "checkpoint_step", None)
        tts.shape_costs = self.shape_costs
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
        return self.synthesize_ids([self.tokenizer.encode(text)], 1, controls, speaker=speaker,
                                   reference=reference)[0]["mel"]

    def synthesize_ids(self, encoded: list[np.ndarray], batch_size: int = 8, controls: Controls = Controls(), *,
                       speaker: int | None = None, reference: np.ndarray | None = None) -> list[dict]:
        """Token id arrays (N_i,) int (the tokenizer's ids, no padding) -> the module function `synthesize_ids`' dicts ("mel",
        "durations", "pitch", "energy"), in order, without audio. Planned with `shape_costs` (by default the first
        call's costs, `FIRST_CALL_SHAPE_COSTS`, halved per call this synthesizer has made: `shape_cost_for`)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        condition = self.condition_inputs(speaker, reference)
        prepare = lambda tokens, mask: self._prepare(self.params, tokens, mask, controls,
                                                     *self._batch_condition(condition, len(tokens)))
        render = lambda h, mask, durations, frames: self._render(self.params, h, mask, durations, frames, controls,
                                                                 *self._batch_condition(condition, len(h)))
        token_level = getattr(self.model.config, "backbone", self.model.config).variance_level == "token"
        results = synthesize_ids(prepare, render, self._frames_needed, encoded, batch_size, token_level,
                                 self._compiled, synthesis_shape_costs(self.shape_costs, self.calls_made))
        self.calls_made += 1
        return results

    @staticmethod
    def _batch_condition(condition: tuple, rows: int) -> tuple:
        """The conditioning arrays (batch 1) repeated to `rows` rows."""
        return tuple(np.repeat(np.asarray(c), rows, axis=0) for c in condition)

    def synthesize_batch(self, texts: list[str], batch_size: int = 8, controls: Controls = Controls(), *,
                         speaker: int | None = None, reference: np.ndarray | None = None,
                         griffin_lim_iters: int = 60) -> list[dict]:
        """Texts -> one dict per text, in order: "audio" (S,) float32 and "sample_rate" (the vocoder's), "mel" (T, M),
        "symbols" (the N tokens spoken), "durations" (N,) int frames per token, "pitch" and "energy" (the model's
        predictions, z-scored by the corpus statistics: (N,) at token level, (T,) at frame level). Texts of
        similar length run together, at most `batch_size` at a time (`prepare` on texts sorted by token count;
        `render` on groups of similar predicted length, `render_plan`); results come back in the input order. A
        text that does not normalize or tokenize raises its one-line error before any is synthesized."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.condition_inputs(speaker, reference)
        encoded = [self.tokenizer.encode(text) for text in texts]
        results = self.synthesize_ids(encoded, batch_size, controls, speaker=speaker, reference=reference)
        mels = [r["mel"] for r in results]
        if self.vocoder is not None:  # batches of similar length through the vocoder, at one batch shape
            audios = [None] * len(mels)
            order = sorted(range(len(mels)), key=lambda k: mels[k].shape[0])
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                filled = batch_size if len(order) > batch_size else len(rows)
                chunk = [mels[k] for k in rows]
                chunk += [chunk[-1]] * (filled - len(chunk))  # the call's one batch shape, as above
                for k, audio in zip(rows, self.vocoder.batch(chunk, batch_size=filled)):
                    audios[k] = clip_protected(audio)
        else:
            audios = [self.vocode(m, griffin_lim_iters=griffin_lim_iters)[0] for m in mels]
        for result, ids, audio in zip(results, encoded, audios):
            result.update(audio=audio, sample_rate=self.mel_config.sample_rate,
                          symbols=self.tokenizer.table.lookup(ids))
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
        """(T, M) log mel -> (float32 audio (S,) at the model's level, `clip_protected`, sample_rate), through the neural vocoder
        when one is set (`use_vocoder`), else Griffin-Lim (`griffin_lim_iters` iterations)."""
        if self.vocoder is not None:
            return clip_protected(self.vocoder(log_mel)), self.mel_config.sample_rate
        wave = log_mel_to_waveform(log_mel, jax.random.PRNGKey(0), self.mel_config, n_iter=griffin_lim_iters,
                                   frames=frame_rung(len(log_mel)))  # one compiled Griffin-Lim per ladder rung
        return clip_protected(wave), self.mel_config.sample_rate


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
