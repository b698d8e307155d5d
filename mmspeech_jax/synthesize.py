"""Text -> speech with a trained FastSpeech2 workdir (or an export), Griffin-Lim as the vocoder.

    from mmspeech_jax.synthesize import Synthesizer
    tts = Synthesizer.from_workdir("workdir/ljspeech_tts")
    audio, sample_rate = tts.synthesize("Hello there.")

Shapes are padded to a small ladder (tokens to a multiple of 32, frames to 256 / 512 / 1024 / 2048), so a session
compiles a handful of times, not once per sentence.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from mmspeech_jax.audio.features import MelConfig
from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform
from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config
from mmspeech_jax.models.variance_adaptor import Controls
from mmspeech_jax.text.symbols import SymbolTable
from mmspeech_jax.text.tokenizer import make_tokenizer
from mmspeech_jax.workdir import read_workdir_config, restore_params

FRAME_LADDER = (256, 512, 1024, 2048)
FRAMES_PER_TOKEN_BOUND = 12  # generous upper bound on frames per token at speed 1


class Synthesizer:
    def __init__(self, model: FastSpeech2, params, table: SymbolTable, mel_config: MelConfig, tokenizer_kind: str):
        self.model, self.params, self.mel_config = model, params, mel_config
        self.tokenizer = make_tokenizer(tokenizer_kind)
        self.tokenizer.table.check_compatible(table)
        self._generate = jax.jit(
            lambda p, t, m, n, c: model.apply({"params": p}, t, m, n, controls=c, method=FastSpeech2.generate),
            static_argnums=(3, 4))

    @classmethod
    def from_workdir(cls, workdir) -> "Synthesizer":
        workdir = Path(workdir)
        config = read_workdir_config(workdir)
        params, _ = restore_params(workdir)
        return cls(FastSpeech2(FastSpeech2Config.from_dict(config["model"])), params,
                   SymbolTable.load(workdir / "symbols.json"), MelConfig(**config["features"]["mel"]),
                   config["features"]["tokenizer"])

    def mel(self, text: str, controls: Controls = Controls()) -> np.ndarray:
        """text -> log-mel (T, M). Raises the text errors of `normalize_text` / the tokenizer (one line)."""
        ids = self.tokenizer.encode(text)
        n = -(-ids.size // 32) * 32
        tokens = np.zeros((1, n), np.int32)
        tokens[0, : ids.size] = ids
        mask = tokens > 0
        budget = ids.size * FRAMES_PER_TOKEN_BOUND / controls.speed
        frames = next((f for f in FRAME_LADDER if f >= budget), FRAME_LADDER[-1])
        mel, frame_mask, _ = self._generate(self.params, tokens, mask, frames, controls)
        return np.asarray(mel[0, : max(int(frame_mask[0].sum()), 2)])

    def synthesize(self, text: str, controls: Controls = Controls(), *, griffin_lim_iters: int = 60):
        """text -> (float32 audio (S,), sample_rate)."""
        return self.vocode(self.mel(text, controls), griffin_lim_iters=griffin_lim_iters)

    def vocode(self, log_mel: np.ndarray, *, griffin_lim_iters: int = 60):
        """(T, M) log mel -> (float32 audio (S,) peak-normalized to 0.9, sample_rate), through Griffin-Lim."""
        wave = np.asarray(log_mel_to_waveform(log_mel, jax.random.PRNGKey(0), self.mel_config, n_iter=griffin_lim_iters))
        peak = float(np.max(np.abs(wave))) or 1.0
        return (wave / peak * 0.9).astype(np.float32), self.mel_config.sample_rate
