"""The natural English text source: parsing, speakability filter, determinism, held-out evaluation set."""

import collections
import re

import numpy as np
import pytest

from mmspeech_jax.data import english_text as et
from mmspeech_jax.data.sentences import KINDS, sentence
from mmspeech_jax.errors import TextSourceError
from mmspeech_jax.text.normalize import normalize_text

WORDNET_LINE = "{offset} 00 n 01 thing 0 000 | a gloss; {examples}\n"


def fake_sources(tmp_path, wordnet_examples, cookies, extra_files=None):
    """WordNet data files and fortune collections in the packages' formats, written from the given sentences."""
    wordnet, fortunes = tmp_path / "wordnet", tmp_path / "fortunes"
    wordnet.mkdir(), fortunes.mkdir()
    for i, name in enumerate(et.WORDNET_FILES):
        lines = ["  1 This software and database is provided \"as is\" by Princeton.\n"]  # licence header
        mine = wordnet_examples[i::len(et.WORDNET_FILES)]
        lines += [WORDNET_LINE.format(offset=f"{k:08d}", examples="; ".join(f'"{e}"' for e in mine[k:k + 2]))
                  for k in range(0, len(mine), 2)]
        (wordnet / name).write_text("".join(lines), encoding="latin-1")
    (fortunes / "fortunes").write_text("\n%\n".join(cookies) + "\n%\n")
    (fortunes / "fortunes.dat").write_bytes(b"\x00\x01binary index")
    for name, text in (extra_files or {}).items():
        (fortunes / name).write_text(text)
    return str(wordnet), str(fortunes)


@pytest.mark.parametrize("text, kept", [
    ("she put the slippers under the bed neatly", True),
    ("Please sweep the floor", True),
    ("He paid $5 for it.", True),
    ("whereas `each,' `every,' are distributive", False),  # a backtick: metalanguage
    ("the word 'cat' is short", False),  # a quoted word
    ("Famous last words:", False),  # a heading
    ("SHIFT TO THE RIGHT NOW", False),  # shouting
    ("two words", False),  # too short
    (" ".join(["word"] * (et.MAX_WORDS + 1)), False),  # too long
    ("café au lait for everyone", False),  # outside the plain character set
    ("Dial 5551234567 at once", False),  # a long digit string
])
def test_speakable_filter(text, kept):
    assert et.speakable(text) is kept


def test_wordnet_examples_parse_the_gloss_quotes_only(tmp_path):
    wordnet, _ = fake_sources(tmp_path, ["one two three", "four five six", "seven eight nine", "ten eleven twelve",
                                          "a b c"], ["A cookie."])
    assert sorted(et.wordnet_examples(wordnet)) == sorted(["one two three", "four five six", "seven eight nine",
                                                           "ten eleven twelve", "a b c"])


def test_fortune_sentences_drop_attribution_dialogue_and_excluded_collections(tmp_path):
    cookies = ["The early bird gets the worm.  But the second mouse\ngets the cheese!\n\t\t-- Anonymous",
               "Q: Why did it cross?\nA: To get there."]
    _, fortunes = fake_sources(tmp_path, ["x y z"] * 4, cookies,
                               extra_files={"art": "Never read this art sentence.\n%\n",
                                            "riddles": "Is this kept as well?\n%\n"})
    assert sorted(et.fortune_sentences(fortunes)) == sorted([
        "The early bird gets the worm.", "But the second mouse gets the cheese!", "Is this kept as well?"])


def test_english_sentences_sorted_unique_and_without_the_evaluation_set(tmp_path):
    held_out = et.evaluation_sentences()[0]
    examples = ["the quick brown fox jumps", "The quick brown fox jumps.", "a green leafy salad", held_out.lower(),
                "we walked home slowly"]
    wordnet, fortunes = fake_sources(tmp_path, examples, ["Time flies like an arrow.", "so short"])
    text = et.english_sentences(wordnet, fortunes)
    assert text == ("A green leafy salad.", "The quick brown fox jumps.", "Time flies like an arrow.",
                    "We walked home slowly.")


def test_missing_packages_are_one_line_errors(tmp_path):
    with pytest.raises(TextSourceError, match="wordnet-base") as error:
        et.english_sentences(str(tmp_path / "no-wordnet"), str(tmp_path))
    assert "\n" not in str(error.value)
    wordnet, _ = fake_sources(tmp_path, ["a b c"] * 4, ["A cookie here."])
    with pytest.raises(TextSourceError, match="fortunes"):
        et.source_fingerprint(wordnet, str(tmp_path / "no-fortunes"))


def test_source_fingerprint_follows_the_files(tmp_path):
    wordnet, fortunes = fake_sources(tmp_path, ["one two three"] * 4, ["A first cookie."])
    before = et.source_fingerprint(wordnet, fortunes)
    (tmp_path / "fortunes" / "fortunes").write_text("A second cookie.\n%\n")
    et.source_fingerprint.cache_clear()
    assert et.source_fingerprint(wordnet, fortunes) != before


def words_of(sentences):
    return collections.Counter(w for s in sentences for w in re.findall(r"[a-z']+", normalize_text(s)))


def test_installed_text_is_broad_english_and_disjoint_from_the_evaluation_set():
    text = et.english_sentences()
    assert len(text) >= 50_000 and len(words_of(text)) >= 20_000
    assert list(text) == sorted(set(text))
    training = {normalize_text(s) for s in text}
    evaluation = [normalize_text(s) for s in et.evaluation_sentences()]
    assert len(evaluation) >= 200 and len(set(evaluation)) == len(evaluation)
    assert not training & set(evaluation)
    # Everyday words: the evaluation set's running words are nearly all in the training text.
    known = words_of(text)
    running = [w for s in evaluation for w in re.findall(r"[a-z']+", s)]
    assert np.mean([w in known for w in running]) > 0.98


def test_natural_sentences_are_a_seeded_permutation():
    text = et.english_sentences()
    first = [et.natural_sentence(5, i) for i in range(2000)]
    assert len(set(first)) == 2000 and set(first) <= set(text)
    assert first == [et.natural_sentence(5, i) for i in range(2000)]
    assert first != [et.natural_sentence(6, i) for i in range(2000)]
    assert et.natural_sentence(5, len(text)) == first[0]  # wraps around


def test_sentence_mixes_natural_text_without_changing_the_templates():
    mixed = [sentence(0, i, natural_fraction=0.7) for i in range(1000)]
    kinds = collections.Counter(k for k, _ in mixed)
    assert set(kinds) == set(KINDS) | {"natural"}
    assert 0.65 < kinds["natural"] / 1000 < 0.75
    templates = [sentence(0, i) for i in range(1000)]
    assert all(m == t for m, t in zip(mixed, templates) if m[0] != "natural")
    assert sentence(0, 3, natural_fraction=1.0)[0] == "natural"
