"""espeak-ng through ctypes, from the PyPI wheel `espeakng-loader` (library and voice data inside; no system package).

Two calls are used: `espeak_TextToPhonemes` (text -> phoneme mnemonics; the phoneme tokenizer) and `espeak_Synth`
with a synthesis callback (text -> 22 050 Hz int16 audio plus phoneme events with their start samples; the embedded
corpus). Both speak the same mnemonic symbol set (espeak's ASCII phoneme names, stress marks ' and , attached to the
vowel), so a corpus utterance's tokens carry their true durations.

libespeak-ng keeps global state (voice, callback), so there is one engine per process, guarded by a lock.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import threading

import espeakng_loader
import numpy as np

from mmspeech_jax.errors import ConfigError, MMSpeechError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
# espeak's pause "phonemes": silence, not speech sounds. Tokenizers never emit them; the corpus merges their
# duration into the neighbouring token (the clause mark that ends a clause).
PAUSE_MNEMONICS = frozenset({"", "_", "_:", "_!", "_|", "_^_", "|", "||"})
# Mnemonics that are spelled like the clause marks of the symbol tables are renamed, in this one place, for the
# tokenizer and the corpus alike: "?" is espeak's glottal stop.
RENAMED_MNEMONICS = {"?": "?-glottal", "!": "!-espeak", ",": ",-espeak", ".": ".-espeak"}


def canonical_mnemonic(mnemonic: str) -> str:
    """espeak mnemonic -> symbol-table name (identity except for `RENAMED_MNEMONICS`)."""
    return RENAMED_MNEMONICS.get(mnemonic, mnemonic)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT in speak_lib.h
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Voice:
    """An espeak voice: language voice with an optional variant ("en-us+f3"), speaking rate and pitch settings."""

    name: str = "en-us"
    rate_wpm: int = 165
    pitch: int = 50  # espeak's 0-100 base pitch
    pitch_range: int = 50  # espeak's 0-100 intonation range

    def __post_init__(self):
        if not 80 <= self.rate_wpm <= 450:
            raise ConfigError(f"Voice {self.name}: rate_wpm must be in [80, 450], got {self.rate_wpm}")
        if not (0 <= self.pitch <= 100 and 0 <= self.pitch_range <= 100):
            raise ConfigError(f"Voice {self.name}: pitch and pitch_range must be in [0, 100]")

    @property
    def id(self) -> str:
        """Stable string id, e.g. "en-us+f3@165wpm-p50-r50"."""
        return f"{self.name}@{self.rate_wpm}wpm-p{self.pitch}-r{self.pitch_range}"

    @property
    def language(self) -> str:
        """The espeak-ng language part of the voice name (before any '+variant')."""
        return self.name.split("+")[0]


@dataclasses.dataclass(frozen=True)
class PhonemeEvent:
    """One phoneme of espeak-ng's output: its mnemonic and the sample at which it starts."""
    mnemonic: str
    start_sample: int


@dataclasses.dataclass(frozen=True)
class Synthesis:
    """espeak-ng's output for one text: audio (S,) int16 at `sample_rate`, and its phoneme events in time order
    (pauses included)."""
    audio: np.ndarray  # (S,) int16
    sample_rate: int
    events: tuple[PhonemeEvent, ...]  # in time order, pauses included


class EspeakError(MMSpeechError):
    """libespeak-ng refused a call (unknown voice, failed initialisation)."""


class EspeakEngine:
    """The process-wide handle on libespeak-ng. Get it with `espeak_engine()`."""

    def __init__(self):
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lock = threading.Lock()
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), _INITIALIZE_PHONEME_EVENTS
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[PhonemeEvent] = []
        self._callback = _CALLBACK(self._on_audio)  # keep a reference: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: Voice | None = None

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = bytes(events[i].id.string).split(b"\0")[0].decode("ascii", "replace")
                self._events.append(PhonemeEvent(canonical_mnemonic(name), int(events[i].sample)))
            i += 1
        return 0

    def _select(self, voice: Voice) -> None:
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            self._voice = None
            raise EspeakError(f"espeak-ng has no voice named {voice.name!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, voice.rate_wpm, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
        self._voice = voice

    def synthesize(self, text: str, voice: Voice = Voice()) -> Synthesis:
        """Speaks `text` (taken literally; pass normalized text). Deterministic for a given (text, voice)."""
        data = text.encode("utf-8")
        with self._lock:
            self._select(voice)
            self._chunks, self._events = [], []
            self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            events = tuple(self._events)
        return Synthesis(audio.astype(np.int16), self.sample_rate, events)

    def phonemize(self, text: str, voice: Voice = Voice()) -> list[list[str]]:
        """Text -> words -> phoneme mnemonics (pause markers removed), via espeak_TextToPhonemes."""
        separator = 0x1F  # ASCII unit separator: never part of a mnemonic ("_" is: pauses are "_:", "_!")
        with self._lock:
            self._select(Voice(voice.language))
            buffer = ctypes.c_char_p(text.encode("utf-8"))
            pointer = ctypes.pointer(buffer)
            pieces = []
            while buffer.value:
                result = self._lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, separator << 8)
                if result is None:
                    break
                pieces.append(result.decode("utf-8", "replace"))
        words = []
        for piece in pieces:
            for word in piece.split(" "):  # not split(): it treats the separator 0x1F as whitespace
                phonemes = [canonical_mnemonic(p) for p in word.split("\x1f") if p not in PAUSE_MNEMONICS]
                if phonemes:
                    words.append(phonemes)
        return words


@functools.cache
def espeak_engine() -> EspeakEngine:
    """The single libespeak-ng engine of this process (created on first use)."""
    return EspeakEngine()
