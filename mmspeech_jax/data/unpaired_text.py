"""Unpaired text for the text modality: the natural English sentences of `data/english_text.py` in one split of the
embedded corpus (the split hash of `synthetic_corpus.split_of`, so validation and test sentences stay unseen),
normalized, and encoded by any of the zoo's tokenizers (phonemes for a text path that feeds synthesis, characters
for a language model).
"""

from __future__ import annotations

import warnings

from mmspeech_jax.data.english_text import english_sentences
from mmspeech_jax.data.synthetic_corpus import CorpusConfig, split_of
from mmspeech_jax.text.tokenizer import CharacterTokenizer, make_tokenizer


def natural_sentences_by_split(splits=("train", "validation"), corpus: CorpusConfig = CorpusConfig()) -> dict:
    """{split: [normalized sentence, ...]} for the named splits, in the text source's order."""
    normalizer, out = CharacterTokenizer(), {name: [] for name in splits}
    for text in english_sentences():
        normalized = normalizer.normalize(text)
        split = split_of(normalized, corpus.validation_fraction, corpus.test_fraction)
        if split in out:
            out[split].append(normalized)
    return out


def encode_sentences_with(texts, tokenizer_kind: str, max_tokens: int | None = None) -> list[list[int]]:
    """Normalized sentences -> symbol-id lists by the tokenizer `tokenizer_kind` ("espeak", "arpabet",
    "characters"); sentences longer than `max_tokens` symbols are left out. Phonemes outside the table take their
    nearest symbol silently (the corpus's own phonemization warns about them)."""
    tokenizer, out = make_tokenizer(tokenizer_kind), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in texts:
            ids = [int(i) for i in tokenizer.encode(text, normalized=True)]
            if ids and (max_tokens is None or len(ids) <= max_tokens):
                out.append(ids)
    return out
