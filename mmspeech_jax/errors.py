"""The exceptions raised at the public boundary of mmspeech_jax.

Every error a user can cause with bad input (a file, a text, a config) is one of these, with a one-line message
that names the offending thing. Catch `MMSpeechError` to catch them all. Each also derives from the closest built-in
exception (`ValueError`, `FileNotFoundError`) so generic handlers keep working.
"""

from __future__ import annotations


class MMSpeechError(Exception):
    """Base class. The message is always collapsed to a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(MMSpeechError, ValueError):
    """A config field has an invalid value or an unknown key was given."""


# --- audio -------------------------------------------------------------------------------------------------------
class AudioError(MMSpeechError):
    """Base class for audio input problems."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The audio file does not exist."""


class AudioDecodeError(AudioError):
    """The file exists but cannot be decoded as audio (corrupt, truncated or not audio)."""


class EmptyAudioError(AudioError):
    """The audio holds no samples."""


class AudioTooLongError(AudioError):
    """The audio is longer than the configured maximum."""


class UnsupportedSampleRateError(AudioError):
    """The sample rate is too low to carry speech, or otherwise unusable."""


class AudioFormatError(AudioError):
    """Strict loading only: channels, sample format or rate differ from what the caller requires."""


class AudioFileExistsError(AudioError, FileExistsError):
    """Refusing to overwrite an existing file."""


class FeatureError(MMSpeechError, ValueError):
    """Features handed to a model directly (log-mel arrays, a batch) have the wrong shape, are empty or not finite,
    or disagree with each other (lengths, durations)."""


# --- text --------------------------------------------------------------------------------------------------------
class TextError(MMSpeechError, ValueError):
    """Base class for text input problems."""


class EmptyTextError(TextError):
    """The text is empty or holds only whitespace / unspeakable characters."""


class UnsupportedCharacterError(TextError):
    """The text holds a character the normalizer has no mapping for."""


class UnknownSymbolError(TextError):
    """A token is not in the tokenizer's symbol table."""


class TextTooLongError(TextError):
    """The text is longer than the configured maximum."""


# --- data --------------------------------------------------------------------------------------------------------
class CorpusError(MMSpeechError):
    """Base class for corpus and feature-cache problems."""


class CorpusNotFoundError(CorpusError, FileNotFoundError):
    """The corpus or feature-cache directory does not exist or is not complete."""


class TextSourceError(CorpusError, FileNotFoundError):
    """A natural-text source (an installed Debian package's files) is missing or unreadable."""


class CorpusMismatchError(CorpusError):
    """A directory exists but was made by a different configuration or version."""


# --- training ----------------------------------------------------------------------------------------------------
class TrainingDivergedError(MMSpeechError):
    """Training stopped: too many consecutive steps had a non-finite loss or gradient (all of them skipped)."""


class OutputPathError(MMSpeechError, ValueError):
    """An output path cannot be written (a folder where a file goes, a missing or read-only folder, a file that
    exists): reported before any work starts."""


class WorkdirBusyError(MMSpeechError):
    """Another process holds the workdir's lock (a second writer would mix two runs' logs and checkpoints)."""


class NotAWorkdirError(MMSpeechError):
    """A --workdir that cannot be one: a file, a directory of other files (no marker), an unwritable location."""


class WorkdirDamagedError(MMSpeechError):
    """A workdir file (config.json, symbols.json) is truncated or not what it should be."""


class CheckpointDamagedError(MMSpeechError):
    """No checkpoint step of a workdir restores (each damaged one was reported and kept)."""


class WorkdirMismatchError(MMSpeechError):
    """A workdir holds checkpoints of another model than the one a command would resume there (nothing is changed)."""


class SummaryError(MMSpeechError, ValueError):
    """An evaluation hook returned a TensorBoard summary that cannot be shown (wrong shape or dtype, a non-finite or
    out-of-range waveform, an unknown kind)."""


# --- outputs -----------------------------------------------------------------------------------------------------
class OutputExistsError(MMSpeechError, FileExistsError):
    """An export would overwrite a file that is already there (nothing is written)."""
