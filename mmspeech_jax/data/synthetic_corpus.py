"""The embedded default corpus: real speech synthesized locally by espeak-ng, with phoneme-level ground truth.

Each utterance is a seeded generated sentence (`sentences.py`), normalized (`normalize_text`: the normalized text
is exactly what is spoken, so the transcript always matches the audio), spoken by one of the configured voices,
and stored with:
  * audio: `wavs/<id>.flac`, 22 050 Hz, 16-bit mono (the synthesizer's own samples, bit-exact);
  * `transcript` (the written sentence), `text` (the normalized, spoken text), `voice`, `speaker` (index);
  * `phonemes`: the espeak tokenizer's symbols for `text` and, for each, `start_sample` / `end_sample` from the
    synthesizer's phoneme events. Token i therefore has a true duration (aligners are evaluated against it).
    Leading silence belongs to the first token; a clause mark spans the pause that ends its clause (zero if espeak
    made none); a short pause inside a clause belongs to the phoneme before it.
Utterances whose events do not match the tokenizer, that hold a phoneme outside the symbol table, whose duration is outside [min_seconds, max_seconds], or
whose text repeats an earlier one of its shard are skipped and the next sentence is drawn (deterministically).

Splits are fixed by a stable hash (SHA-1) of the normalized text. The corpus is generated on first use into
`<cache_dir>/<name>-<fingerprint>/` (written under a temporary name, then renamed, so a half-written corpus is
never read). Generation runs in `num_shards` fresh worker processes (`python -m` subprocesses): libespeak-ng carries hidden state from
one utterance to the next (its audio depends on what it spoke before), so each shard starts from a clean library
and speaks a fixed sequence. Hence the same config gives byte-identical audio, on any machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from mmspeech_jax import config_checks
from mmspeech_jax.data.english_text import evaluation_sentences, source_fingerprint
from mmspeech_jax.data.sentences import sentence
from mmspeech_jax.errors import ConfigError, CorpusError, CorpusMismatchError, CorpusNotFoundError
from mmspeech_jax.text.espeak import PAUSE_MNEMONICS, PhonemeEvent, Voice, espeak_engine
from mmspeech_jax.text.normalize import PUNCTUATION, normalize_text
from mmspeech_jax.text.tokenizer import EspeakTokenizer

CORPUS_FORMAT_VERSION = "espeak-corpus-v1"
SPLITS = ("train", "validation", "test")
TEXTS = ("training", "evaluation")

# Voices of the multi-speaker corpus: espeak en-us with variants and rate/pitch settings.
MULTISPEAKER_VOICES = (
    Voice("en-us"),
    Voice("en-us+f3", rate_wpm=155, pitch=60),
    Voice("en-us+m3", rate_wpm=175, pitch=40),
    Voice("en-us+f2", rate_wpm=150, pitch=70, pitch_range=70),
    Voice("en-us+m7", rate_wpm=185, pitch=35, pitch_range=30),
    Voice("en-us+f4", rate_wpm=165, pitch=55, pitch_range=80),
    Voice("en-us+m1", rate_wpm=160, pitch=45),
    Voice("en-us+f5", rate_wpm=170, pitch=65, pitch_range=40),
)


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """The embedded corpus: how many utterances, the seed, the espeak-ng voices, utterance length bounds (seconds),
    split fractions, generation shards, the share of natural English, and which text ("training" stream or the
    natural "evaluation" set). Everything that changes the audio is in its fingerprint. Checked when built."""
    name: str = "espeak-en"
    num_utterances: int = 13000  # ~10.4 h at the mix of natural and template sentences
    seed: int = 0
    voices: tuple[Voice, ...] = (Voice("en-us"),)
    min_seconds: float = 1.0
    max_seconds: float = 8.0
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    num_shards: int = 2  # generation processes; part of the config because the sentence-to-shard map depends on it
    natural_fraction: float = 0.7  # share of natural English sentences (english_text.py); the rest are templates
    text: str = "training"  # "training": the seeded sentence stream; "evaluation": the natural evaluation set

    def __post_init__(self):
        config_checks.integers(self, num_utterances=1, seed=0, num_shards=1)
        for name in ("min_seconds", "max_seconds", "validation_fraction", "test_fraction", "natural_fraction"):
            config_checks.number(self, name)
        config_checks.choice(self, "text", TEXTS)
        if self.text == "evaluation" and self.num_utterances > len(evaluation_sentences()):
            raise ConfigError(f"CorpusConfig: the natural evaluation set has {len(evaluation_sentences())} sentences, "
                              f"num_utterances is {self.num_utterances}")
        if not 0 <= self.natural_fraction <= 1:
            raise ConfigError(f"CorpusConfig.natural_fraction must be in [0, 1], got {self.natural_fraction}")
        if not self.voices:
            raise ConfigError("CorpusConfig.voices must name at least one voice")
        if not 0 < self.min_seconds < self.max_seconds:
            raise ConfigError(f"CorpusConfig: need 0 < min_seconds < max_seconds, got {self.min_seconds}, {self.max_seconds}")
        if not (0 <= self.validation_fraction and 0 <= self.test_fraction and self.validation_fraction + self.test_fraction < 1):
            raise ConfigError("CorpusConfig: validation_fraction + test_fraction must be in [0, 1)")

    def to_json(self) -> dict:
        """The config with what else decides the corpus: format, symbol table and, with natural text, its source."""
        natural = self.natural_fraction > 0 or self.text == "evaluation"
        text = {"english_text": source_fingerprint()} if natural else {}
        return {**dataclasses.asdict(self), "format": CORPUS_FORMAT_VERSION,
                "symbols": EspeakTokenizer.table.fingerprint, **text}

    @classmethod
    def from_json(cls, data: dict) -> "CorpusConfig":
        """Inverse of `to_json` (the corpus's config.json)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        return cls(**{**values, "voices": tuple(Voice(**v) for v in values["voices"])})

    @property
    def fingerprint(self) -> str:
        """12 hex digits of the config's JSON (the text sources' fingerprint included): names the corpus directory."""
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:12]


def natural_eval_config(voice: Voice = Voice("en-us"), num_utterances: int | None = None) -> CorpusConfig:
    """The natural evaluation set (english_text.evaluation_sentences: hand-written, never trained on) spoken by
    `voice`, its first `num_utterances` sentences (default: all) in order and all in the "test" split: what reports
    score models on beside their own corpus's test split."""
    count = len(evaluation_sentences()) if num_utterances is None else num_utterances
    return CorpusConfig(name="natural-eval", text="evaluation", num_utterances=count,
                        voices=(voice,), min_seconds=0.2, max_seconds=20.0, natural_fraction=0.0)


def multispeaker_config(num_voices: int = len(MULTISPEAKER_VOICES), **overrides) -> CorpusConfig:
    """The same corpus spoken by several voices (one voice per utterance, round-robin)."""
    if not 1 <= num_voices <= len(MULTISPEAKER_VOICES):
        raise ConfigError(f"num_voices must be in [1, {len(MULTISPEAKER_VOICES)}], got {num_voices}")
    return CorpusConfig(**{"name": "espeak-en-multi", "voices": MULTISPEAKER_VOICES[:num_voices], **overrides})


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One corpus utterance: id, split, speaker index and voice, sentence kind, the transcript as written and the
    normalized text spoken, its wav path (relative to the corpus root) and length, and the espeak phonemes with the
    sample at which each starts (the ground truth aligners are measured against)."""
    id: str
    split: str
    speaker: int
    voice: str
    kind: str
    transcript: str
    text: str
    audio_path: str  # relative to the corpus root
    num_samples: int
    sample_rate: int
    phonemes: tuple[str, ...]
    start_samples: tuple[int, ...]
    end_samples: tuple[int, ...]

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return self.num_samples / self.sample_rate


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A generated corpus on disk: its root directory, its config (JSON dict) and its utterances in order."""
    root: Path
    config: dict
    utterances: tuple[Utterance, ...]

    def split(self, name: str) -> tuple[Utterance, ...]:
        """The utterances of one split ("train", "validation", "test"); `ConfigError` for another name."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        return tuple(u for u in self.utterances if u.split == name)

    @property
    def voices(self) -> tuple[str, ...]:
        """The voice ids, in speaker-index order."""
        return tuple(Voice(**v).id for v in self.config["voices"])

    def audio(self, utterance: Utterance) -> np.ndarray:
        """The utterance's samples as float32 (S,) in [-1, 1]."""
        audio, _ = sf.read(str(self.root / utterance.audio_path), dtype="float32")
        return audio


def default_cache_dir() -> Path:
    """$MMSPEECH_CACHE_DIR if set, else ~/.cache/mmspeech_jax."""
    return Path(os.environ.get("MMSPEECH_CACHE_DIR", Path.home() / ".cache" / "mmspeech_jax"))


def corpus_dir(config: CorpusConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a corpus with this config lives: <cache dir>/corpora/<name>-<fingerprint>."""
    return Path(cache_dir or default_cache_dir()) / "corpora" / f"{config.name}-{config.fingerprint}"


def split_of(text: str, validation_fraction: float, test_fraction: float) -> str:
    """Stable split from SHA-1 of the normalized text (identical sentences always share a split)."""
    u = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64
    if u < validation_fraction:
        return "validation"
    if u < validation_fraction + test_fraction:
        return "test"
    return "train"


def align_events(tokens: list[str], events: tuple[PhonemeEvent, ...], num_samples: int):
    """Matches tokenizer symbols to synthesizer events. Returns (starts, ends) sample lists, or None on mismatch."""
    starts, e = [], 0
    for token in tokens:
        if token in PUNCTUATION:
            # The clause mark starts at the pause after the previous phoneme (or, with no pause, takes no time).
            pause_start = None
            while e < len(events) and events[e].mnemonic in PAUSE_MNEMONICS:
                pause_start = events[e].start_sample if pause_start is None else pause_start
                e += 1
            if pause_start is None:
                pause_start = events[e].start_sample if e < len(events) else num_samples
            starts.append(pause_start)
            continue
        while e < len(events) and events[e].mnemonic in PAUSE_MNEMONICS:
            e += 1  # a pause inside a clause: its time stays with the phoneme before it
        if e >= len(events) or events[e].mnemonic != token:
            return None
        starts.append(events[e].start_sample)
        e += 1
    if any(ev.mnemonic not in PAUSE_MNEMONICS for ev in events[e:]) or not starts:
        return None
    starts[0] = 0
    starts = [min(max(s, 0), num_samples) for s in starts]
    if any(b < a for a, b in zip(starts, starts[1:])):
        return None
    return starts, starts[1:] + [num_samples]


def _generate_shard(config: CorpusConfig, shard: int, partial: str) -> list[dict]:
    """Runs in a fresh worker process (libespeak-ng state then depends only on this shard's calls -> bit-exact audio).

    Shard s draws sentences s, s + S, s + 2S, ... of the seeded stream and keeps the first that pass the checks;
    its k-th kept utterance becomes utterance k * S + s of the corpus.
    """
    engine, tokenizer = espeak_engine(), EspeakTokenizer()
    shards = config.num_shards
    wanted = len(range(shard, config.num_utterances, shards))
    records, seen, draw = [], set(), 0
    while len(records) < wanted:
        index = draw * shards + shard
        draw += 1
        if draw > 50 * wanted + 1000:
            raise ConfigError(f"corpus {config.name}: too few sentences of {config.min_seconds}-{config.max_seconds} s")
        if config.text == "evaluation":
            if index >= config.num_utterances:
                raise CorpusError(f"corpus {config.name}: an evaluation sentence could not be spoken within "
                                  f"{config.min_seconds}-{config.max_seconds} s or aligned")
            kind, transcript = "evaluation", evaluation_sentences()[index]
        else:
            kind, transcript = sentence(config.seed, index, config.natural_fraction)
        text = normalize_text(transcript)
        if text in seen:
            continue
        position = len(records) * shards + shard
        speaker = position % len(config.voices)
        voice = config.voices[speaker]
        synthesis = engine.synthesize(text, voice)
        if not config.min_seconds <= synthesis.audio.size / synthesis.sample_rate <= config.max_seconds:
            continue
        tokens = tokenizer.tokens(text, normalized=True)
        if any(token not in tokenizer.table for token in tokens):
            continue  # a phoneme only phrase context gives (',a#'): outside the versioned table, so not trainable
        aligned = align_events(tokens, synthesis.events, synthesis.audio.size)
        if aligned is None:
            continue
        seen.add(text)
        uid = f"{config.name}-{position:05d}"
        rel = f"wavs/{uid}.flac"
        sf.write(os.path.join(partial, rel), synthesis.audio, synthesis.sample_rate, subtype="PCM_16", format="FLAC")
        records.append(dataclasses.asdict(Utterance(
            id=uid, speaker=speaker,
            split="test" if config.text == "evaluation" else split_of(text, config.validation_fraction,
                                                                       config.test_fraction),
            voice=voice.id, kind=kind, transcript=transcript, text=text, audio_path=rel,
            num_samples=int(synthesis.audio.size), sample_rate=synthesis.sample_rate, phonemes=tuple(tokens),
            start_samples=tuple(aligned[0]), end_samples=tuple(aligned[1]),
        )))
    return records


def generate_corpus(config: CorpusConfig = CorpusConfig(), cache_dir=None, *, progress: bool = True) -> Corpus:
    """Returns the corpus for `config`, generating it first (in `num_shards` fresh worker processes) if not cached."""
    root = corpus_dir(config, cache_dir)
    if (root / "COMPLETE").is_file():
        return load_corpus(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f"{root.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "wavs").mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps(config.to_json(), indent=1))
    shards = min(config.num_shards, config.num_utterances)
    workers = []
    for shard in range(shards):
        log = open(partial / f"worker-{shard}.log", "w")
        command = [sys.executable, "-m", "mmspeech_jax.data.synthetic_corpus", "--worker", str(shard), str(partial)]
        workers.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        with tqdm(total=config.num_utterances, desc=f"generating corpus {config.name}", unit="utt",
                  disable=not progress) as bar:
            while any(w.poll() is None for w, _ in workers):
                bar.n = sum(1 for _ in (partial / "wavs").iterdir())
                bar.refresh()
                time.sleep(0.25)
            bar.n = config.num_utterances
            bar.refresh()
    finally:
        for worker, log in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            log.close()
    for shard, (worker, _) in enumerate(workers):
        if worker.returncode != 0:
            lines = (partial / f"worker-{shard}.log").read_text().strip().splitlines() or ["no output"]
            shutil.rmtree(partial, ignore_errors=True)
            raise CorpusError(f"corpus generation worker {shard} failed (exit {worker.returncode}): {lines[-1]}")
    shard_records = [json.loads((partial / f"shard-{s}.json").read_text()) for s in range(shards)]
    for s in range(shards):
        os.remove(partial / f"shard-{s}.json")
        os.remove(partial / f"worker-{s}.log")
    records = sorted((r for rs in shard_records for r in rs), key=lambda r: r["id"])
    with open(partial / "metadata.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    (partial / "COMPLETE").write_text(f"{len(records)}\n")
    try:
        os.replace(partial, root)
    except OSError:  # another process finished first: keep its copy, drop ours
        shutil.rmtree(partial, ignore_errors=True)
    return load_corpus(root)


def load_corpus(path: str | os.PathLike) -> Corpus:
    """Reads a generated corpus directory. Raises `CorpusNotFoundError` if it is missing or incomplete."""
    root = Path(path)
    if not root.is_dir():
        raise CorpusNotFoundError(f"corpus directory not found: {root}")
    if not (root / "COMPLETE").is_file():
        raise CorpusNotFoundError(f"corpus directory {root} is incomplete (no COMPLETE marker); delete it to regenerate")
    config = json.loads((root / "config.json").read_text())
    if config.get("format") != CORPUS_FORMAT_VERSION:
        raise CorpusMismatchError(f"corpus {root} has format {config.get('format')!r}, expected {CORPUS_FORMAT_VERSION!r}")
    with open(root / "metadata.jsonl") as f:
        utterances = tuple(
            Utterance(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(line).items()}) for line in f
        )
    return Corpus(root, config, utterances)


def _worker_main(argv) -> None:
    """`python -m mmspeech_jax.data.synthetic_corpus --worker SHARD PARTIAL_DIR`: one shard, in a fresh process."""
    shard, partial = int(argv[1]), Path(argv[2])
    config = CorpusConfig.from_json(json.loads((partial / "config.json").read_text()))
    records = _generate_shard(config, shard, str(partial))
    (partial / f"shard-{shard}.json").write_text(json.dumps(records))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        _worker_main(sys.argv[1:])
    else:
        sys.exit("usage: python -m mmspeech_jax.data.synthetic_corpus --worker SHARD PARTIAL_DIR (internal)")
