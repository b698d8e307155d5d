"""English normalization: expected spoken forms written by hand, errors, and the output alphabet."""

import pytest

from mmspeech_jax.errors import EmptyTextError, TextTooLongError, UnsupportedCharacterError
from mmspeech_jax.text.normalize import NORMALIZED_ALPHABET, normalize_text, split_clauses

CASES = [
    ("Hello, World!", "hello, world!"),
    ("Mr. Smith paid $3.50.", "mister smith paid three dollars and fifty cents."),
    ("Dr. Who? (Yes.)", "doctor who? yes."),
    ("It costs £1.01", "it costs one pound and one penny."),
    ("I have 2 cats", "i have two cats."),
    ("Born in 1990.", "born in nineteen ninety."),
    ("He came 1st, she came 23rd.", "he came first, she came twenty third."),
    ("About 45% of them", "about forty five percent of them."),
    ("There are 1,234 cows.", "there are one thousand two hundred and thirty four cows."),
    ("Pi is 3.14", "pi is three point one four."),
    ("It was -5 outside", "it was minus five outside."),
    ("Meet at 10:05 a.m. sharp", "meet at ten oh five a m sharp."),
    ("Meet at 3:00", "meet at three o'clock."),
    ("e.g. apples, pears, etc.", "for example apples, pears, et cetera."),
    ("café “naïve” well-known", "cafe naive well known."),
    ("Tom & Jerry @ home", "tom and jerry at home."),
    ("WAIT... what?!", "wait. what?"),
    ("don't 'quote' me", "don't quote me."),
    ("Ran 5 km on Jan. 3rd", "ran five kilometers on january third."),
    ("one; two: three — four", "one, two, three, four."),
]


@pytest.mark.parametrize("raw,expected", CASES)
def test_normalize(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("raw", [c[0] for c in CASES])
def test_output_alphabet_and_idempotence(raw):
    out = normalize_text(raw)
    assert set(out) <= NORMALIZED_ALPHABET
    assert normalize_text(out) == out


@pytest.mark.parametrize("bad,error", [
    ("", EmptyTextError), ("   \n\t", EmptyTextError), ("...!?", EmptyTextError), (None, EmptyTextError),
    ("hello 😀", UnsupportedCharacterError), ("x" * 1001, TextTooLongError),
])
def test_bad_text_raises_one_line_errors(bad, error):
    with pytest.raises(error) as info:
        normalize_text(bad)
    assert "\n" not in str(info.value)


def test_unknown_character_names_it_and_its_position():
    with pytest.raises(UnsupportedCharacterError, match=r"U\+1F600.*position 6"):
        normalize_text("hello 😀 there")


def test_max_chars_is_configurable():
    assert normalize_text("a" * 1500, max_chars=2000) == "a" * 1500 + "."
    with pytest.raises(TextTooLongError):
        normalize_text("hello there", max_chars=5)


def test_split_clauses():
    assert split_clauses("hi, you there? yes.") == [("hi", ","), ("you there", "?"), ("yes", ".")]
