"""The closed loop `evaluate_tts` (evaluate/intelligibility.py) on stand-ins: batched synthesis and transcription
keep each sentence's transcript, rates match `error_rates`, and a rejected text is the only one left out."""

import numpy as np
import pytest

from mmspeech_jax.errors import MMSpeechError


class _Speaker:
    """A stand-in synthesizer: a text's "audio" is its characters' codes (so the stand-in transcriber can read it
    back); texts with "@" are rejected, and the batch call fails as a whole when one is."""

    def __init__(self):
        self.batches = []

    def synthesize(self, text):
        if "@" in text:
            raise MMSpeechError(f"cannot speak {text!r}")
        return np.array([ord(c) for c in text], np.float32), 16000

    def synthesize_batch(self, texts, batch_size):
        self.batches.append(len(texts))
        return [{"audio": a, "sample_rate": r} for a, r in map(self.synthesize, texts)]

    def vocode(self, mel):
        return np.asarray(mel, np.float32), 16000


class _Listener:
    """A stand-in transcriber that hears the character codes back, dropping every "x" (its one error), and records
    each batch's lengths and the `pause_seconds` it ran with (a `Transcriber` silences pauses by default)."""

    def __init__(self):
        self.calls, self.pause_seconds, self.ran_with = [], 0.2, []

    def transcribe(self, items, batch_size):
        self.ran_with.append(self.pause_seconds)
        out = []
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            self.calls.append([len(a) for a, _ in chunk])
            out += [{"text": "".join(chr(int(v)) for v in a).replace("x", "")} for a, _ in chunk]
        return out

    def transcribe_features(self, mels):
        self.ran_with.append(self.pause_seconds)
        self.calls.append([len(m) for m in mels])
        return ["".join(chr(int(v)) for v in m) for m in mels]


def test_evaluate_tts_batches_keep_order_and_leave_out_only_the_failing_texts():
    """Batched synthesis and transcription give each line its own transcript; the rates equal `error_rates` of the
    expected transcripts; a rejected text falls back to one-by-one synthesis and only that text is left out."""
    from mmspeech_jax.evaluate.asr import error_rates
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts

    texts = ["a long sentence with x", "short", "mid length one", "six x", "another one here", "b", "x y z"]
    truth = {texts[2]: np.array([ord(c) for c in texts[2]], np.float32)}
    speaker, listener = _Speaker(), _Listener()
    report = evaluate_tts(speaker, listener, texts, truth, batch_size=3)
    assert speaker.batches == [len(texts)]
    # the audio heard as it is (no pause silenced, as the TTS CERs recorded before), the caller's transcriber unchanged
    assert listener.ran_with and set(listener.ran_with) == {0.0} and listener.pause_seconds == 0.2
    assert [line["transcript"] for line in report["lines"]] == [t.replace("x", "") for t in texts]
    heard = [call for call in listener.calls if len(call) > 1 or call[0] != len(texts[2])]
    assert all(len(call) <= 3 for call in listener.calls) and sorted(sum(heard, [])) == sum(heard, [])
    expected = error_rates(texts, [t.replace("x", "") for t in texts])
    assert report["synthesized"] == expected and report["synthesized"]["cer"] > 0
    assert report["ground_truth"]["cer"] == 0 and report["lines"][2]["ground_truth_transcript"] == texts[2]

    bad = texts[:2] + ["@ cannot"] + texts[2:]
    report = evaluate_tts(_Speaker(), _Listener(), bad, batch_size=3)
    assert "error" in report["lines"][2] and "transcript" not in report["lines"][2]
    assert [line.get("transcript") for line in report["lines"]] == \
        [t.replace("x", "") for t in texts[:2]] + [None] + [t.replace("x", "") for t in texts[2:]]
    assert report["synthesized"] == expected
    with pytest.raises(MMSpeechError, match="nothing to score"):
        evaluate_tts(_Speaker(), _Listener(), ["@"], batch_size=3)
