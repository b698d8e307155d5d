"""Parameter export for other JAX code: safetensors with stable '/'-joined names, plus config.json and symbols.json.

    from mmspeech_jax.export import load_exported
    model, params, table, mel_config = load_exported("exported/")
    mel, frame_mask, durations = model.apply({"params": params}, tokens, token_mask, 512, method=model.generate)

Names are the Flax parameter paths joined by '/', e.g. "encoder/block_0/attention/qkv/kernel". config.json records
the workdir's task: "tts" (FastSpeech2), "hyperspeech" (HyperSpeech: `method=model.generate` then also takes the
speaker / reference arguments), "asr" (CTCASR), "lm" (TextLM) or "joint" (JointSpeechText: FastSpeech2's
`generate`, and `method=model.recognize` for CTC log-probabilities); `load_exported` rebuilds the matching module.
Its "inference" entry holds what inference needs beyond the parameters (`inference_fields`): the tokenizer kind
and the corpus statistics (feature mean/std for the ASR's input normalization, F0 and energy statistics), and the
step the parameters come from, so `Synthesizer.from_export` / `Transcriber.from_export` (and the CLI given an
export directory as `--workdir`) need nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmspeech_jax.errors import OutputExistsError


def flatten(params, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dict of arrays -> {"a/b/c": array}: names are the dict paths joined by '/' (safetensors keys)."""
    out = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """Inverse of `flatten`: {"a/b/c": array} -> nested dict."""
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


PARAMETER_FILES = ("model.safetensors", "config.json", "symbols.json")


def check_new_outputs(out_dir, names) -> Path:
    """`out_dir` as a Path, or `OutputExistsError` when any of the files `names` an export would write is already
    in it (checked before anything is written, so a user's file is never replaced)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir} exists and is not a directory; choose another output directory")
    taken = sorted(name for name in names if (out_dir / name).exists())
    if taken:
        raise OutputExistsError(f"{out_dir} already holds {', '.join(taken)}; choose another output directory")
    return out_dir


def inference_fields(workdir_config: dict, step: int) -> dict:
    """What an export's config.json carries for inference, from a training workdir's config.json: the tokenizer
    kind ("espeak", "arpabet", "characters"; None for a text LM), the corpus statistics (`stats`: the ASR's feature
    mean/std, F0 and energy statistics; None when the workdir has none) and the checkpoint step."""
    fields = {"tokenizer": workdir_config.get("features", {}).get("tokenizer"), "stats": workdir_config.get("stats"),
              "step": int(step)}
    if workdir_config.get("mode") is not None:  # a joint speech–text model: what it was trained for
        fields["mode"] = workdir_config["mode"]
    return fields


def is_export(directory) -> bool:
    """True when `directory` holds an export (model.safetensors) rather than a training workdir (checkpoints/)."""
    directory = Path(directory)
    return (directory / "model.safetensors").is_file() and not (directory / "checkpoints").is_dir()


def read_export_config(directory) -> dict:
    """config.json of an export, with its "inference" entry; one-line errors: `NotAWorkdirError` when a file is
    missing, `WorkdirDamagedError` when config.json is not JSON, `ConfigError` for an export written before
    exports carried their inference fields (re-export it from its workdir)."""
    from mmspeech_jax.errors import ConfigError, NotAWorkdirError, WorkdirDamagedError

    directory = Path(directory)
    missing = [name for name in PARAMETER_FILES if not (directory / name).is_file()]
    if missing:
        raise NotAWorkdirError(f"{directory} is not a complete export (missing {', '.join(missing)})")
    try:
        config = json.loads((directory / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorkdirDamagedError(f"{directory / 'config.json'} is damaged (not JSON: {exc})") from None
    if not isinstance(config, dict) or "inference" not in config:
        raise ConfigError(f"{directory} was exported without its inference fields (tokenizer, statistics); "
                          "export it again from its workdir with `mmspeech export`")
    return config


def export_parameters(params, model_config: dict, symbols: dict, mel_config: dict, out_dir, task: str = "tts",
                      inference: dict | None = None) -> Path:
    """Writes model.safetensors, config.json and symbols.json into `out_dir` (refuses to overwrite any of them).
    `inference`: `inference_fields(...)` of the workdir, stored as config.json's "inference"."""
    from safetensors.numpy import save_file

    out_dir = check_new_outputs(out_dir, PARAMETER_FILES)
    out_dir.mkdir(parents=True, exist_ok=True)
    import os

    from mmspeech_jax.workdir import atomic_write_text

    partial = out_dir / f".model.safetensors.tmp{os.getpid()}"
    save_file({k: np.ascontiguousarray(v) for k, v in flatten(params).items()}, str(partial))
    os.chmod(partial, 0o644)  # safetensors writes 0600; the export is for others to read, like its siblings
    os.replace(partial, out_dir / "model.safetensors")
    atomic_write_text(out_dir / "config.json", json.dumps({"task": task, "model": model_config, "mel": mel_config,
                                                           "inference": inference}, indent=1))
    atomic_write_text(out_dir / "symbols.json", json.dumps(symbols, indent=1))
    return out_dir


def load_exported(directory):
    """-> (module, params pytree, SymbolTable, MelConfig or None for a text LM) from an `export_parameters`
    directory."""
    from safetensors.numpy import load_file

    from mmspeech_jax.audio.features import MelConfig
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config
    from mmspeech_jax.text.symbols import SymbolTable

    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    task = config.get("task", "tts")
    if task == "hyperspeech":
        from mmspeech_jax.models.hyperspeech import HyperSpeech, HyperSpeechConfig

        model = HyperSpeech(HyperSpeechConfig.from_dict(config["model"]))
    elif task == "lm":
        from mmspeech_jax.models.text_lm import TextLM, TextLMConfig

        model = TextLM(TextLMConfig.from_dict(config["model"]))
    elif task == "asr":
        from mmspeech_jax.models.ctc_asr import CTCASR, CTCASRConfig

        model = CTCASR(CTCASRConfig.from_dict(config["model"]))
    elif task == "joint":
        from mmspeech_jax.models.joint_speech_text import JointConfig, JointSpeechText

        model = JointSpeechText(JointConfig.from_dict(config["model"]))
    else:
        model = FastSpeech2(FastSpeech2Config.from_dict(config["model"]))
    params = unflatten(load_file(str(directory / "model.safetensors")))
    mel = MelConfig(**config["mel"]) if config.get("mel") is not None else None
    return model, params, SymbolTable.load(directory / "symbols.json"), mel


def load_exported_vocoder(directory):
    """-> (VocoderConfig, generator params pytree, step) from the export of a vocoder workdir (`mmspeech export`:
    the generator's parameters only); a one-line `ConfigError` for an export of another task."""
    from safetensors.numpy import load_file

    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.models.vocoder import VocoderConfig

    config = read_export_config(directory)
    if config.get("task") != "vocoder":
        raise ConfigError(f"{directory} is not a vocoder export (config.json task is {config.get('task')!r})")
    params = unflatten(load_file(str(Path(directory) / "model.safetensors")))
    return VocoderConfig.from_dict(config["model"]), params, config["inference"].get("step")
