"""Log-mel -> waveform with a trained neural vocoder (`experiments/vocoder.py`), batched at a few padded shapes.

    vocoder = Vocoder.from_workdir("workdir/vocoder")        # a training workdir or an `mmspeech export` of one
    audio = vocoder(log_mel)                                 # (T, M) float32 natural-log mel -> (S,) float32
    audios = vocoder.batch([mel_1, mel_2, ...], batch_size=8)

Output length S = (T - 1) * hop, the zoo's frame convention (the same as Griffin-Lim's). Each mel is padded at the
end by repeating its last frame to a rung of 128 frames (~1.5 s), so a session compiles once per rung and batch
size, and the padding's samples are cut; a mel whose shape or values are wrong is a one-line `FeatureError`.
Repeating the last frame keeps the generator's last real frames close to an unpadded call: padding with silence
after a loud last frame cost the `cpu` preset 0.07 PESQ in copy synthesis of the validation utterances, which end
mid-speech (benchmarks/RESULTS.md, 2026-12-06).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mmspeech_jax.audio.features import check_log_mel
from mmspeech_jax.errors import ConfigError
from mmspeech_jax.models.vocoder import VocoderConfig, generate

FRAME_RUNG = 128


def padded_frames(frames: int) -> int:
    """The padded frame count of a `frames`-frame mel: the next multiple of FRAME_RUNG."""
    return -(-int(frames) // FRAME_RUNG) * FRAME_RUNG


class Vocoder:
    """A trained generator: `__call__(log_mel (T, M)) -> (S,)`, `batch(list) -> list`, `sample_rate`. Build it with
    `from_workdir` (training workdir or export) or from a `VocoderConfig` and the generator's parameters."""

    def __init__(self, config: VocoderConfig, generator_params):
        self.config, self.params = config, generator_params
        self.sample_rate = config.mel.sample_rate
        self._generate = jax.jit(lambda p, m: generate(config, p, m))
        self._compiled = set()  # (rows, frames) shapes run so far (`batch`)
        # frames a new shape is worth in `batch`'s plans: None (default) SHAPE_COST_FRAMES halved per `batch` call
        # made (`synthesize.shape_cost_for`: few shapes on a first call); an int fixes it (0: least padding)
        self.shape_cost = None
        self.calls_made = 0  # `batch` calls made
        self.checkpoint_step = None

    @classmethod
    def from_workdir(cls, workdir) -> "Vocoder":
        """A vocoder training workdir (the newest checkpoint's generator) or its export; any other workdir is a
        one-line `ConfigError` before parameters load."""
        from mmspeech_jax.export import is_export, load_exported_vocoder
        from mmspeech_jax.workdir import read_workdir_config, restore_params

        workdir = Path(workdir)
        if is_export(workdir):
            config, params, step = load_exported_vocoder(workdir)
        else:
            record = read_workdir_config(workdir)
            if record.get("task") != "vocoder":
                raise ConfigError(f"{workdir} is not a vocoder workdir (config.json task is {record.get('task')!r})")
            config = VocoderConfig.from_dict(record["model"])
            params, step = restore_params(workdir)
            params = params["generator"]
        vocoder = cls(config, params)
        vocoder.checkpoint_step = step
        return vocoder

    def check_mel_config(self, mel_config) -> None:
        """A one-line `ConfigError` unless `mel_config` (a `MelConfig`) is the features this vocoder inverts."""
        if mel_config != self.config.mel:
            raise ConfigError(f"the vocoder inverts {self.config.mel}, the model gives {mel_config}; train the "
                              f"vocoder on the same features")

    def __call__(self, log_mel) -> np.ndarray:
        """log_mel (T, M) float32 -> audio (S,) float32, S = (T - 1) * hop."""
        return self.batch([log_mel], batch_size=1)[0]

    def batch(self, log_mels, batch_size: int = 8) -> list[np.ndarray]:
        """Many log-mels (each (T_i, M)) -> their audio, in order. Vocoded in groups of similar length
        (`synthesize.plan_groups`: at most `batch_size` rows, padded to a power of two and to a multiple of
        `FRAME_RUNG` frames, each mel's last frame repeated); the plan weighs the padding against compiling a new
        shape (`synthesize.shape_cost_for(shape_cost, calls made)` frames; shapes this vocoder has run at before are
        free)."""
        from mmspeech_jax.synthesize import CALL_COST_FRAMES, plan_groups, shape_cost_for

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        mels = [check_log_mel(m, self.config.mel.n_mels, f"log-mel {i}") for i, m in enumerate(log_mels)]
        for i, mel in enumerate(mels):
            if mel.shape[0] < 2:
                raise ConfigError(f"log-mel {i}: a vocoder needs at least 2 frames, got {mel.shape[0]}")
        out = [None] * len(mels)
        plan = plan_groups([m.shape[0] for m in mels], batch_size, padded_frames, CALL_COST_FRAMES,
                           shape_cost_for(self.shape_cost, self.calls_made), self._compiled) if mels else []
        self.calls_made += 1
        for group, rows, frames in plan:
            block = np.empty((rows, frames, self.config.mel.n_mels), np.float32)
            for r in range(rows):  # each mel, then its last frame repeated (the module docstring)
                mel = mels[group[min(r, len(group) - 1)]]  # rows past the group repeat its last mel
                block[r] = np.pad(mel, ((0, frames - mel.shape[0]), (0, 0)), mode="edge")
            audio = np.asarray(self._generate(self.params, jnp.asarray(block)))
            self._compiled.add((rows, frames))
            for r, i in enumerate(group):
                out[i] = audio[r, : (mels[i].shape[0] - 1) * self.config.hop_samples].astype(np.float32)
        return out
