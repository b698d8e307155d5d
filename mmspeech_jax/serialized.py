"""Serialized inference without the model code: `jax.export` (StableHLO) artifacts of a trained workdir.

    mmspeech export --workdir W --out DIR --stablehlo [--max-tokens 256] [--max-frames 1024] [--platforms cpu,cuda,tpu]

writes into DIR, by the workdir's task:
  tts / hyperspeech  text_to_mel.jax      tokens (B, max_tokens) int32, token_mask (B, max_tokens) bool
                                          [hyperspeech: + speaker (B,) int32 (-1 none), reference_mel (B, R, M),
                                          reference_mask (B, R)]  ->  mel (B, max_frames, M), frame_mask,
                                          durations (B, max_tokens) int32, truncated (B,) bool
                     griffin_lim.jax      log_mel (max_frames, M) -> waveform (S,)   (60 iterations, fixed seed)
                     [with --vocoder V: text_to_waveform.jax   text_to_mel's inputs -> waveform (B, S) float32,
                                          sample_mask (B, S) bool, durations, truncated: FastSpeech2 and the neural
                                          vocoder in one program, S = (max_frames - 1) * hop; frames past a row's
                                          frame_mask are silence (the log floor) for the vocoder, and its samples
                                          past (frames - 1) * hop are masked out]
  asr                features_to_log_probs.jax   log_mel (B, max_frames, M), frame_mask (B, max_frames)
                                          -> CTC log-probabilities (B, T', V), output mask (B, T')
                                          (the training feature normalization is inside)
plus manifest.json (each artifact's inputs, shapes and dtypes; the symbol table for turning text into tokens or
log-probabilities into characters; the mel config). Parameters are baked into the artifacts as constants.

`truncated` is True for a row whose predicted durations sum to more than max_frames: its mel holds only the first
max_frames frames. Check it (or export with a larger --max-frames); the artifact never cuts speech silently.

`--platforms` (default: cpu) lowers one artifact for several backends at once (`jax.export` multi-platform
lowering: "cpu", "cuda", "rocm", "tpu"); the loading process picks its own. Lowering needs no device of that kind.

The batch dimension B is symbolic (any batch size runs); lengths are fixed at export time (pad to them, pass the
mask): the position tables and Griffin-Lim's framing are built for a concrete length. A process that imports only
jax and numpy runs them:

    import jax, numpy as np
    fn = jax.export.deserialize(open("DIR/text_to_mel.jax", "rb").read())
    mel, frame_mask, durations, truncated = fn.call(tokens, token_mask)
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
from jax import export

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.export import check_new_outputs

REFERENCE_FRAMES = 512
ARTIFACTS = {"tts": ("text_to_mel", "griffin_lim"), "hyperspeech": ("text_to_mel", "griffin_lim"),
             "asr": ("features_to_log_probs",)}  # by the workdir's task


PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def check_platforms(platforms) -> tuple[str, ...]:
    """A sequence of platform names (or one comma-separated string) -> a tuple of unique known names, in order;
    `ConfigError` (one line) for an unknown or empty one."""
    names = [p.strip() for p in platforms.split(",")] if isinstance(platforms, str) else list(platforms)
    unknown = [p for p in names if p not in PLATFORMS]
    if not names or unknown:
        raise ConfigError(f"platforms must be among {', '.join(PLATFORMS)} (comma-separated), got "
                          f"{', '.join(map(repr, unknown)) if unknown else 'none'}")
    return tuple(dict.fromkeys(names))


def _serialize(fn, platforms, *specs) -> bytes:
    return export.export(jax.jit(fn), platforms=platforms)(*specs).serialize()


def _with_truncation(generate, max_frames: int):
    """generate(...) -> (mel, frame_mask, durations) becomes ... -> (mel, frame_mask, durations, truncated (B,))."""
    def fn(tokens, token_mask, *rest):
        mel, frame_mask, durations = generate(tokens, token_mask, *rest)[:3]
        total = jnp.sum(jnp.where(token_mask, durations, 0), axis=-1)
        return mel, frame_mask, durations, total > max_frames

    return fn


def _with_vocoder(text_to_mel, vocoder_workdir, mel_config, manifest: dict):
    """text_to_mel(...) -> (mel, frame_mask, durations, truncated) becomes ... -> (waveform (B, S), sample_mask (B, S),
    durations, truncated) through the neural vocoder of `vocoder_workdir` (recorded in `manifest["vocoder"]`)."""
    from mmspeech_jax.models.vocoder import generate
    from mmspeech_jax.vocode import Vocoder

    vocoder = Vocoder.from_workdir(vocoder_workdir)
    vocoder.check_mel_config(mel_config)
    manifest["vocoder"] = {"workdir": str(Path(vocoder_workdir).absolute()), "step": vocoder.checkpoint_step,
                           "generator": vocoder.config.generator}
    floor = float(jnp.log(mel_config.log_floor))

    def fn(*args):
        mel, frame_mask, durations, truncated = text_to_mel(*args)
        wave = generate(vocoder.config, vocoder.params, jnp.where(frame_mask[..., None], mel, floor))
        valid = (jnp.sum(frame_mask, axis=-1) - 1) * vocoder.config.hop_samples
        return wave, jnp.arange(wave.shape[1])[None, :] < valid[:, None], durations, truncated

    return fn


def _spec(shape, dtype) -> dict:
    return {"shape": ["B" if not isinstance(d, int) else d for d in shape], "dtype": jnp.dtype(dtype).name}


def export_workdir(workdir, out_dir, max_tokens: int = 256, max_frames: int = 1024, platforms=("cpu",),
                   vocoder_workdir=None) -> Path:
    """Writes the task's artifacts, lowered for each of `platforms`, and manifest.json into `out_dir` (refuses to
    overwrite any of those files). `vocoder_workdir` (a TTS workdir's export only): also text_to_waveform.jax."""
    from mmspeech_jax.audio.features import MelConfig
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    for name, value in (("max_tokens", max_tokens), ("max_frames", max_frames)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer (the padded length exported), got {value!r}")
    platforms = check_platforms(platforms)
    workdir = Path(workdir)
    config = read_workdir_config(workdir)
    task = config.get("task", "tts")
    if task not in ARTIFACTS:
        raise ConfigError(f"{workdir}: task {task!r} has no serialized export (known: {', '.join(ARTIFACTS)})")
    if vocoder_workdir is not None and task not in ("tts", "hyperspeech"):
        raise ConfigError(f"--vocoder goes with a TTS workdir; {workdir} is a {task!r} workdir")
    extra = ["text_to_waveform.jax"] if vocoder_workdir is not None else []
    out_dir = check_new_outputs(out_dir, [f"{name}.jax" for name in ARTIFACTS[task]] + extra + ["manifest.json"])
    params, step = restore_params(workdir)
    mel_config = MelConfig(**config["features"]["mel"])
    m = mel_config.n_mels
    (b,) = export.symbolic_shape("B")
    artifacts, manifest = {}, {"task": task, "step": int(step), "platforms": list(platforms),
                               "mel": config["features"]["mel"],
                               "symbols": json.loads((workdir / "symbols.json").read_text()), "artifacts": {}}
    if task == "asr":
        from mmspeech_jax.models.ctc_asr import CTCASR, CTCASRConfig, normalize_features

        model, stats = CTCASR(CTCASRConfig.from_dict(config["model"])), config["stats"]
        fn = lambda mel, mask: model.apply({"params": params}, normalize_features(mel, mask, stats), mask, train=False)
        inputs = [((b, max_frames, m), jnp.float32), ((b, max_frames), jnp.bool_)]
        artifacts["features_to_log_probs"] = (fn, inputs, ["log_mel", "frame_mask"], ["log_probs", "output_mask"])
    else:
        from mmspeech_jax.audio.griffin_lim import log_mel_to_waveform

        if task == "hyperspeech":
            from mmspeech_jax.models.hyperspeech import HyperSpeech, HyperSpeechConfig

            model = HyperSpeech(HyperSpeechConfig.from_dict(config["model"]))
            fn = lambda t, k, s, r, rk: model.apply({"params": params}, t, k, max_frames, s, r, rk,
                                                    method=HyperSpeech.generate)
            inputs = [((b, max_tokens), jnp.int32), ((b, max_tokens), jnp.bool_), ((b,), jnp.int32),
                      ((b, REFERENCE_FRAMES, m), jnp.float32), ((b, REFERENCE_FRAMES), jnp.bool_)]
            names = ["tokens", "token_mask", "speaker", "reference_mel", "reference_mask"]
        else:
            from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config

            model = FastSpeech2(FastSpeech2Config.from_dict(config["model"]))
            fn = lambda t, k: model.apply({"params": params}, t, k, max_frames, method=FastSpeech2.generate)
            inputs, names = [((b, max_tokens), jnp.int32), ((b, max_tokens), jnp.bool_)], ["tokens", "token_mask"]
        artifacts["text_to_mel"] = (_with_truncation(fn, max_frames), inputs, names,
                                    ["mel", "frame_mask", "durations", "truncated"])
        if vocoder_workdir is not None:
            artifacts["text_to_waveform"] = (_with_vocoder(_with_truncation(fn, max_frames), vocoder_workdir,
                                                           mel_config, manifest), inputs, names,
                                             ["waveform", "sample_mask", "durations", "truncated"])
        vocoder = lambda mel: log_mel_to_waveform(mel, jax.random.PRNGKey(0), mel_config)
        artifacts["griffin_lim"] = (vocoder, [((max_frames, m), jnp.float32)], ["log_mel"], ["waveform"])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (fn, inputs, names, outputs) in artifacts.items():
        blob = _serialize(fn, platforms, *[jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in inputs])
        (out_dir / f"{name}.jax").write_bytes(blob)
        manifest["artifacts"][name] = {"file": f"{name}.jax", "outputs": outputs,
                                       "inputs": {n: _spec(s, d) for n, (s, d) in zip(names, inputs)}}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out_dir


def load_artifact(path):
    """A serialized artifact -> its callable (`jax.export.Exported.call`)."""
    return export.deserialize(Path(path).read_bytes()).call
