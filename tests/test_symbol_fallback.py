"""The nearest-symbol rule for rare espeak phonemes (text/symbol_fallback.py) and the espeak tokenizer's use of it."""

import warnings

import numpy as np
import pytest

from mmspeech_jax.errors import UnknownSymbolError
from mmspeech_jax.text.symbol_fallback import SymbolSubstitutionWarning, candidates, nearest_symbol, substitute
from mmspeech_jax.text.tokenizer import EspeakTokenizer

TABLE = EspeakTokenizer.table
PONDEROUS = "A book so serious that it sometimes subsided into ponderousness."


def test_every_table_symbol_is_its_own_nearest():
    for symbol in TABLE.symbols:
        assert nearest_symbol(symbol, TABLE) == symbol


@pytest.mark.parametrize("symbol, expected", [
    (",a#", "a#"),      # no ',a#' nor "'a#": unstressed
    ("_!w", "w"),       # pause mark dropped
    ("'a:", "'a"),      # length mark dropped before the stress is touched
    ("a#:", "a#"),
    ("'u", "'u:"),      # no "'u" nor ",u"... length added first, stress kept
    ("'O~", "O~"),      # no "'O~" nor ",O~": unstressed
])
def test_rare_espeak_mnemonics_map_by_the_documented_order(symbol, expected):
    assert symbol not in TABLE and expected in TABLE
    assert nearest_symbol(symbol, TABLE) == expected


def test_candidate_order_is_the_documented_one():
    # written out by hand from the module docstring: pause, then length (as is, without ':'), then stress
    assert candidates("_!'e:") == ["_!'e:", "'e:", ",e:", "e:", "'e", ",e", "e"]
    assert candidates("i") == ["i", "'i", ",i", "i:", "'i:", ",i:"]


def test_symbol_with_no_near_spelling_raises_one_line():
    with pytest.raises(UnknownSymbolError, match="no near spelling") as info:
        nearest_symbol("qq", TABLE)
    assert "\n" not in str(info.value)


def test_substitute_reports_each_replacement_once():
    out, made = substitute(["k", ",a#", "t", ",a#", "_!w"], TABLE)
    assert out == ["k", "a#", "t", "a#", "w"]
    assert made == [(",a#", "a#"), ("_!w", "w")]


def test_espeak_encode_substitutes_and_warns_but_tokens_stay_exact():
    tok = EspeakTokenizer()
    tokens = tok.tokens(PONDEROUS)
    assert ",a#" in tokens                      # what espeak said (the corpus skips such sentences)
    with pytest.warns(SymbolSubstitutionWarning, match=r"',a#' -> 'a#'"):
        ids = tok.encode(PONDEROUS)
    expected = [TABLE.id("a#" if t == ",a#" else t) for t in tokens]
    np.testing.assert_array_equal(ids, np.asarray(expected, np.int32))


def test_espeak_encode_of_ordinary_text_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EspeakTokenizer().encode("Please bring the blue folder to the second floor by noon.")


def test_every_sentence_of_the_text_source_encodes():
    from mmspeech_jax.data.english_text import english_sentences
    tok = EspeakTokenizer()
    outside = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SymbolSubstitutionWarning)
        for sentence in english_sentences():
            tokens = tok.tokens(sentence)
            outside += any(t not in TABLE for t in tokens)
            assert len(tok.encode(sentence)) == len(tokens)   # raises UnknownSymbolError if any were not near
    assert outside > 0  # the rule was exercised, not only the table
