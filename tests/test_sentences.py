"""The seeded sentence generator."""

import collections

from mmspeech_jax.data.sentences import KINDS, sentence
from mmspeech_jax.text.normalize import normalize_text


def test_pure_and_seeded():
    assert [sentence(3, i) for i in range(20)] == [sentence(3, i) for i in range(20)]
    assert [sentence(3, i) for i in range(20)] != [sentence(4, i) for i in range(20)]


def test_covers_every_kind_and_normalizes():
    drawn = [sentence(0, i) for i in range(600)]
    kinds = collections.Counter(k for k, _ in drawn)
    assert set(kinds) == set(KINDS)
    texts = [t for _, t in drawn]
    assert any("$" in t or "£" in t or "€" in t for t in texts)
    assert any(t.endswith("?") for t in texts)
    assert any(any(c.isdigit() for c in t) for t in texts)
    for text in texts:
        normalize_text(text)  # every generated sentence is speakable
    assert len(set(texts)) > 590
