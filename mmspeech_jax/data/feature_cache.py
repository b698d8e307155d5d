"""Precomputed features: mel, F0, voicing, energy, tokens, durations and transcripts, once per corpus.

On-disk format (random access, memory-mapped; one directory per (corpus, feature config)):
  index.json        format version, feature config, counts, statistics, per-utterance id/split/speaker/text
  symbols.json      the token symbol table (versioned)
  offsets.npz       frame/token/char offsets (U + 1,) and speakers (U,)
  mel.f32 (F, M)  f0.f32 (F,)  voiced.u8 (F,)  energy.f32 (F,)    frame-level, concatenated over utterances
  tokens.i32 (N,)  durations.i32 (N,) [if known]  chars.i32 (C,)  token/character-level, concatenated
  rejected.jsonl    utterances that could not be used, with the one-line reason (never dropped silently)

Statistics (training split only): F0 mean/std in Hz and of log-F0 over voiced frames, energy mean/std, mel min/max
and per-bin mean/std. Durations (frames per token, summing exactly to the utterance's frame count) are written when
the source has phoneme boundaries in the tokenizer's symbol set (the embedded corpus with the espeak tokenizer).

Feature extraction runs the JAX front-end on audio padded to a few fixed lengths (so it compiles a handful of
times, not once per utterance); reflect padding is applied to the true signal first, so padding never changes a
feature value. The cache is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from collections.abc import Sequence
from typing import Callable

import jax
import numpy as np
from tqdm.auto import tqdm

from mmspeech_jax import config_checks
from mmspeech_jax.audio.features import MelConfig, log_mel_and_energy, num_frames
from mmspeech_jax.audio.io import resample
from mmspeech_jax.audio.pitch import PitchConfig, yin
from mmspeech_jax.errors import ConfigError, CorpusMismatchError, CorpusNotFoundError, MMSpeechError
from mmspeech_jax.text.symbols import SymbolTable
from mmspeech_jax.text.tokenizer import TOKENIZERS, CharacterTokenizer, make_tokenizer

CACHE_FORMAT_VERSION = "feature-cache-v1"
_PAD_QUANTUM_FRAMES = 64  # audio is padded to a multiple of 64 hops (~0.74 s) -> few compiled shapes


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """What the feature cache computes: log-mel (`MelConfig`), F0 (`PitchConfig`, on the same frame grid), the tokenizer
    kind and the longest utterance kept (seconds). Checked when built."""
    mel: MelConfig = MelConfig()
    pitch: PitchConfig = PitchConfig()
    tokenizer: str = "espeak"
    max_seconds: float = 20.0

    def __post_init__(self):
        if not isinstance(self.mel, MelConfig) or not isinstance(self.pitch, PitchConfig):
            raise ConfigError(f"FeatureConfig: mel and pitch must be a MelConfig and a PitchConfig, got {self}")
        config_checks.choice(self, "tokenizer", TOKENIZERS)
        config_checks.positive(self, "max_seconds")
        if self.mel.sample_rate != self.pitch.sample_rate or self.mel.hop_samples != self.pitch.hop_samples:
            raise ConfigError("FeatureConfig: mel and pitch must share sample_rate and hop_samples (one frame grid)")

    def to_json(self) -> dict:
        """The config as a JSON-able dict, with the cache format version (the cache's fingerprint input)."""
        return {"format": CACHE_FORMAT_VERSION, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class SourceUtterance:
    """One utterance of any corpus, as the feature cache consumes it."""

    id: str
    split: str
    speaker: int
    text: str  # normalized text
    load_audio: Callable[[], tuple[np.ndarray, int]]  # -> (float32 (S,), sample_rate)
    phonemes: tuple[str, ...] | None = None  # ground-truth tokens (espeak symbols) ...
    start_samples: tuple[int, ...] | None = None  # ... and their start samples, at the source's sample rate


def corpus_utterances(corpus) -> list[SourceUtterance]:
    """Adapts a `synthetic_corpus.Corpus`."""
    return [
        SourceUtterance(u.id, u.split, u.speaker, u.text, (lambda u=u: (corpus.audio(u), u.sample_rate)),
                        u.phonemes, u.start_samples)
        for u in corpus.utterances
    ]


def ljspeech_utterances(data_dir) -> "LJSpeechUtterances":
    """Adapts prepared LJSpeech (all three splits). Text: `normalize_text` of LJSpeech's normalized column
    ("" if it cannot be normalized: then reported in rejected.jsonl by the cache builder)."""
    return LJSpeechUtterances(data_dir)


class LJSpeechUtterances(Sequence):
    """Lazy: each record is decoded once, when its utterance is taken (not once for the text, again for audio)."""

    def __init__(self, data_dir):
        from mmspeech_jax.data.ljspeech import LJSpeechSource

        self._sources = {split: LJSpeechSource(data_dir, split) for split in ("train", "validation", "test")}
        self._index = [(split, i) for split, source in self._sources.items() for i in range(len(source))]

    def __len__(self) -> int:
        return len(self._index)

    def split(self, name: str) -> "_SplitView":
        """The utterances of one split ("train", "validation", "test"), in order: a lazy sequence (a record is decoded
        when its utterance is taken, as here)."""
        return _SplitView(self, [k for k, (split, _) in enumerate(self._index) if split == name])

    def __getitem__(self, k: int) -> SourceUtterance:
        from mmspeech_jax.text.normalize import normalize_text

        split, i = self._index[k]
        record = self._sources[split][i]
        try:
            text = normalize_text(record.text_normalized)
        except MMSpeechError:
            text = ""
        return SourceUtterance(record.id, split, 0, text, lambda r=record: (r.audio, r.sample_rate))


class _SplitView(Sequence):
    """A lazy view of some utterances of an `LJSpeechUtterances`, by position."""

    def __init__(self, utterances: LJSpeechUtterances, positions: list[int]):
        self._utterances, self._positions = utterances, positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, k: int) -> SourceUtterance:
        return self._utterances[self._positions[k]]


def durations_from_boundaries(start_samples, num_samples_source: int, source_rate: int, config: MelConfig) -> np.ndarray:
    """Token start samples -> frames per token (int32, >= 0) summing exactly to the utterance's frame count."""
    scale = config.sample_rate / source_rate
    total = num_frames(int(round(num_samples_source * scale)), config.hop_samples)
    bounds = np.rint(np.asarray(start_samples, np.float64) * scale / config.hop_samples).astype(np.int64)
    bounds = np.clip(np.maximum.accumulate(bounds), 0, total)
    bounds[0] = 0
    return np.diff(np.append(bounds, total)).astype(np.int32)


def padded_log_mel_and_energy(audio: np.ndarray, mel_cfg: MelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel (T, M) and energy (T,) of one utterance, computed on audio padded to a multiple of 64 hops so a
    corpus (or a transcription session) compiles once per padded length, not once per utterance length."""
    frames = num_frames(audio.size, mel_cfg.hop_samples)
    quantum = _PAD_QUANTUM_FRAMES * mel_cfg.hop_samples
    padded_len = -(-audio.size // quantum) * quantum
    half = mel_cfg.n_fft // 2
    reflected = np.pad(audio, (half, half), mode="reflect" if audio.size > half else "constant")
    mel_in = np.zeros(padded_len + 2 * half, np.float32)
    mel_in[: reflected.size] = reflected
    log_mel, energy = jax.device_get(log_mel_and_energy(mel_in, mel_cfg, center=False))
    return log_mel[:frames], energy[:frames]


def extract_features(audio: np.ndarray, config: FeatureConfig) -> dict[str, np.ndarray]:
    """One utterance at config.mel.sample_rate -> {mel (T, M), f0_hz (T,), voiced (T,), energy (T,)}."""
    mel_cfg = config.mel
    frames = num_frames(audio.size, mel_cfg.hop_samples)
    quantum = _PAD_QUANTUM_FRAMES * mel_cfg.hop_samples
    padded_len = -(-audio.size // quantum) * quantum
    pitch_in = np.zeros(padded_len, np.float32)
    pitch_in[: audio.size] = audio
    log_mel, energy = padded_log_mel_and_energy(audio, mel_cfg)
    f0_hz, voiced, _ = yin(pitch_in, config.pitch)
    f0_hz, voiced = jax.device_get((f0_hz, voiced))
    return {"mel": log_mel, "f0_hz": f0_hz[:frames], "voiced": voiced[:frames], "energy": energy}


class _Stats:
    """Streaming float64 sums over training frames."""

    def __init__(self, n_mels: int):
        self.f0 = np.zeros(3)  # count, sum, sum of squares (voiced frames, Hz)
        self.log_f0 = np.zeros(3)
        self.energy = np.zeros(3)
        self.mel_sum, self.mel_sq, self.frames = np.zeros(n_mels), np.zeros(n_mels), 0
        self.mel_min, self.mel_max = np.inf, -np.inf

    @staticmethod
    def _add(acc, values):
        values = np.asarray(values, np.float64)
        acc += (values.size, values.sum(), (values**2).sum())

    def add(self, feats):
        voiced_f0 = feats["f0_hz"][feats["voiced"]]
        self._add(self.f0, voiced_f0)
        self._add(self.log_f0, np.log(voiced_f0))
        self._add(self.energy, feats["energy"])
        mel = feats["mel"].astype(np.float64)
        self.mel_sum += mel.sum(0)
        self.mel_sq += (mel**2).sum(0)
        self.frames += mel.shape[0]
        self.mel_min, self.mel_max = min(self.mel_min, mel.min()), max(self.mel_max, mel.max())

    @staticmethod
    def _moments(acc):
        count, total, squares = acc
        if count == 0:
            return 0.0, 1.0
        mean = total / count
        return float(mean), float(max(np.sqrt(max(squares / count - mean**2, 0.0)), 1e-6))

    def to_json(self) -> dict:
        f0_mean, f0_std = self._moments(self.f0)
        log_mean, log_std = self._moments(self.log_f0)
        e_mean, e_std = self._moments(self.energy)
        frames = max(self.frames, 1)
        mel_mean = self.mel_sum / frames
        mel_std = np.sqrt(np.maximum(self.mel_sq / frames - mel_mean**2, 1e-12))
        return {"f0_mean_hz": f0_mean, "f0_std_hz": f0_std, "log_f0_mean": log_mean, "log_f0_std": log_std,
                "voiced_frames": int(self.f0[0]), "energy_mean": e_mean, "energy_std": e_std,
                "mel_min": float(self.mel_min), "mel_max": float(self.mel_max),
                "mel_mean": mel_mean.tolist(), "mel_std": mel_std.tolist(), "train_frames": int(self.frames)}


def build_feature_cache(utterances: Sequence[SourceUtterance], out_dir, config: FeatureConfig = FeatureConfig(),
                        *, progress: bool = True) -> "FeatureCache":
    """Computes all features into `out_dir` (must not exist yet, or be a complete cache of the same config)."""
    out_dir = Path(out_dir)
    if (out_dir / "index.json").is_file():
        cache = FeatureCache(out_dir)
        if cache.config != config.to_json():
            raise CorpusMismatchError(f"feature cache {out_dir} was built with another config; choose another directory")
        return cache
    if out_dir.exists():
        raise CorpusMismatchError(f"{out_dir} exists and is not a feature cache; refusing to overwrite it")
    partial = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tokenizer, chars = make_tokenizer(config.tokenizer), CharacterTokenizer()
    stats = _Stats(config.mel.n_mels)
    files = {name: open(partial / name, "wb") for name in
             ("mel.f32", "f0.f32", "voiced.u8", "energy.f32", "tokens.i32", "durations.i32", "chars.i32")}
    kept, rejected = [], []
    offsets = {"frames": [0], "tokens": [0], "chars": [0]}
    with_durations = config.tokenizer == "espeak" and all(u.phonemes is not None for u in utterances) and utterances
    for utt in tqdm(utterances, desc="extracting features", unit="utt", disable=not progress):
        try:
            if not utt.text:
                raise MMSpeechError("text is empty or could not be normalized")
            audio, rate = utt.load_audio()
            if audio.size / rate > config.max_seconds:
                raise MMSpeechError(f"{audio.size / rate:.1f} s is longer than max_seconds={config.max_seconds}")
            source_samples = audio.size
            if rate != config.mel.sample_rate:
                audio = resample(audio, rate, config.mel.sample_rate)
            token_ids = tokenizer.encode(utt.text, normalized=True)
            if with_durations:
                if tuple(tokenizer.decode(token_ids)) != tuple(utt.phonemes):
                    raise MMSpeechError("tokenizer output differs from the corpus phonemes")
                durations = durations_from_boundaries(utt.start_samples, source_samples, rate, config.mel)
            char_ids = chars.encode(utt.text, normalized=True)
        except MMSpeechError as exc:
            rejected.append({"id": utt.id, "reason": str(exc)})
            continue
        feats = extract_features(audio, config)
        if with_durations and durations.sum() != feats["mel"].shape[0]:
            rejected.append({"id": utt.id, "reason": "durations do not sum to the frame count"})
            continue
        files["mel.f32"].write(feats["mel"].astype(np.float32).tobytes())
        files["f0.f32"].write(feats["f0_hz"].astype(np.float32).tobytes())
        files["voiced.u8"].write(feats["voiced"].astype(np.uint8).tobytes())
        files["energy.f32"].write(feats["energy"].astype(np.float32).tobytes())
        files["tokens.i32"].write(token_ids.astype(np.int32).tobytes())
        files["chars.i32"].write(char_ids.astype(np.int32).tobytes())
        if with_durations:
            files["durations.i32"].write(durations.tobytes())
        offsets["frames"].append(offsets["frames"][-1] + feats["mel"].shape[0])
        offsets["tokens"].append(offsets["tokens"][-1] + token_ids.size)
        offsets["chars"].append(offsets["chars"][-1] + char_ids.size)
        kept.append(utt)
        if utt.split == "train":
            stats.add(feats)
    for f in files.values():
        f.close()
    if not with_durations:
        os.remove(partial / "durations.i32")
    if not kept:
        shutil.rmtree(partial, ignore_errors=True)
        raise CorpusNotFoundError(f"no usable utterance among {len(utterances)} (first reason: "
                                  f"{rejected[0]['reason'] if rejected else 'none given'})")
    np.savez(partial / "offsets.npz", frames=np.asarray(offsets["frames"], np.int64),
             tokens=np.asarray(offsets["tokens"], np.int64), chars=np.asarray(offsets["chars"], np.int64),
             speakers=np.asarray([u.speaker for u in kept], np.int32))
    with open(partial / "rejected.jsonl", "w") as f:
        for r in rejected:
            f.write(json.dumps(r) + "\n")
    tokenizer.table.save(partial / "symbols.json")
    index = {"config": config.to_json(), "num_utterances": len(kept), "num_rejected": len(rejected),
             "has_durations": bool(with_durations), "stats": stats.to_json(),
             "ids": [u.id for u in kept], "splits": [u.split for u in kept], "texts": [u.text for u in kept]}
    (partial / "index.json").write_text(json.dumps(index))  # written last: its presence marks completion
    try:
        os.replace(partial, out_dir)
    except OSError:  # another process finished the same cache first: keep its copy, drop ours
        shutil.rmtree(partial, ignore_errors=True)
        if not (out_dir / "index.json").is_file():
            raise
    if rejected:
        print(f"feature cache: {len(rejected)} utterance(s) rejected, reasons in {out_dir / 'rejected.jsonl'}")
    return FeatureCache(out_dir)


def cache_fingerprint(source_fingerprint: str, config: FeatureConfig) -> str:
    """12 hex digits identifying a cache: the source corpus's fingerprint and the feature config."""
    payload = json.dumps({"source": source_fingerprint, "features": config.to_json()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


class FeatureCache:
    """Read-only random access to a built cache: len(cache), cache[i] -> dict of NumPy arrays."""

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "index.json").is_file():
            raise CorpusNotFoundError(f"no complete feature cache at {self.path}")
        index = json.loads((self.path / "index.json").read_text())
        if index["config"].get("format") != CACHE_FORMAT_VERSION:
            raise CorpusMismatchError(f"feature cache {self.path} has an old format; rebuild it")
        self.config = index["config"]
        self.stats = index["stats"]
        self.ids, self.splits, self.texts = index["ids"], index["splits"], index["texts"]
        self.has_durations = index["has_durations"]
        self.table = SymbolTable.load(self.path / "symbols.json")
        offsets = np.load(self.path / "offsets.npz")
        self._frames, self._tokens, self._chars = offsets["frames"], offsets["tokens"], offsets["chars"]
        self.speakers = offsets["speakers"]
        n_mels = self.config["mel"]["n_mels"]
        total_frames = int(self._frames[-1])
        self._mel = np.memmap(self.path / "mel.f32", np.float32, "r", shape=(total_frames, n_mels))
        self._f0 = np.memmap(self.path / "f0.f32", np.float32, "r", shape=(total_frames,))
        self._voiced = np.memmap(self.path / "voiced.u8", np.uint8, "r", shape=(total_frames,))
        self._energy = np.memmap(self.path / "energy.f32", np.float32, "r", shape=(total_frames,))
        self._token_ids = np.memmap(self.path / "tokens.i32", np.int32, "r", shape=(int(self._tokens[-1]),))
        self._char_ids = np.memmap(self.path / "chars.i32", np.int32, "r", shape=(int(self._chars[-1]),))
        self._durations = (np.memmap(self.path / "durations.i32", np.int32, "r", shape=(int(self._tokens[-1]),))
                           if self.has_durations else None)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_frames(self) -> np.ndarray:
        """(U,) int: mel frames of each utterance."""
        return np.diff(self._frames)

    @property
    def num_tokens(self) -> np.ndarray:
        """(U,) int: tokens of each utterance."""
        return np.diff(self._tokens)

    @property
    def num_chars(self) -> np.ndarray:
        """(U,) int: transcript characters (the ASR's targets) of each utterance."""
        return np.diff(self._chars)

    @property
    def n_mels(self) -> int:
        """Mel channels of the cached log-mels."""
        return int(self.config["mel"]["n_mels"])

    def indices(self, split: str) -> np.ndarray:
        """(K,) int64: the utterance indices of `split` ("train", "validation" or "test"), in cache order."""
        return np.asarray([i for i, s in enumerate(self.splits) if s == split], np.int64)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        f = slice(int(self._frames[i]), int(self._frames[i + 1]))
        t = slice(int(self._tokens[i]), int(self._tokens[i + 1]))
        c = slice(int(self._chars[i]), int(self._chars[i + 1]))
        item = {"mel": np.array(self._mel[f]), "f0_hz": np.array(self._f0[f]), "voiced": self._voiced[f].astype(bool),
                "energy": np.array(self._energy[f]), "tokens": np.array(self._token_ids[t]),
                "chars": np.array(self._char_ids[c]), "speaker": int(self.speakers[i])}
        if self._durations is not None:
            item["durations"] = np.array(self._durations[t])
        return item


def default_feature_cache(corpus, config: FeatureConfig = FeatureConfig(), cache_dir=None, *, progress=True):
    """The cache of an embedded corpus, built on first use next to it (`<cache>/features/<name>-<fp>`)."""
    from mmspeech_jax.data.synthetic_corpus import default_cache_dir

    fp = cache_fingerprint(corpus.root.name, config)
    out = Path(cache_dir or default_cache_dir()) / "features" / f"{corpus.root.name}-{fp}"
    return build_feature_cache(corpus_utterances(corpus), out, config, progress=progress)
