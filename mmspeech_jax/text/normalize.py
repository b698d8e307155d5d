"""English text normalization: from written text to the words a speaker says.

`normalize_text` maps any English text to the normalized alphabet `NORMALIZED_ALPHABET`: lowercase a-z, the
apostrophe, space and the four clause punctuation marks `, . ? !`. Rules, in order (documented in the README):

  1. Unicode: NFKC, then transliteration to ASCII with `unidecode` (café -> cafe, “ ” -> ").
     A character with no transliteration (emoji, most symbols) raises `UnsupportedCharacterError`.
  2. Abbreviations: titles (Mr. -> mister, Dr. -> doctor, St. -> saint), months (Jan. -> january), e.g./i.e./etc.,
     units after numbers (5 km -> five kilometers) — see `_ABBREVIATIONS`.
  3. Money ($3.50 -> three dollars and fifty cents; £, €, ¥ likewise), percentages (5% -> five percent),
     times (3:30 -> three thirty, 10:05 -> ten oh five), ordinals (21st -> twenty first),
     years (four-digit integers 1100-2099 without separators -> nineteen ninety), decimals (3.14 -> three point
     one four), grouped integers (1,234 -> one thousand two hundred and thirty four), negatives (-5 -> minus five);
     all via num2words.
  4. Symbols with a spoken name: & and, @ at, + plus, = equals, # number, / slash, * star, ° degrees.
  5. Punctuation: ; : ( ) [ ] { } — -- ... become clause marks (",", "."); quotes and hyphens between words are
     dropped / become spaces (they are not spoken); repeated marks collapse; a final "." is added when the text
     does not end in . ? or !.
  6. Lowercase; whitespace collapsed.

Empty text raises `EmptyTextError`; text longer than `max_chars` raises `TextTooLongError`. Nothing is dropped
silently: every input character is either spoken, mapped as listed above, or reported.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words
from unidecode import unidecode

from mmspeech_jax.errors import EmptyTextError, TextTooLongError, UnsupportedCharacterError
from mmspeech_jax.text.alphabet import NORMALIZED_ALPHABET, PUNCTUATION  # noqa: F401 (re-exported)
DEFAULT_MAX_CHARS = 1000

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "prof": "professor", "st": "saint",
    "jr": "junior", "sr": "senior", "capt": "captain", "gen": "general", "lt": "lieutenant", "col": "colonel",
    "sgt": "sergeant", "rev": "reverend", "hon": "honorable", "gov": "governor", "sen": "senator",
    "rep": "representative", "mt": "mount", "ft": "fort", "co": "company", "corp": "corporation",
    "inc": "incorporated", "ltd": "limited", "dept": "department", "univ": "university", "ave": "avenue",
    "blvd": "boulevard", "rd": "road", "no": "number", "vs": "versus", "approx": "approximately",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december",
}
_MULTI_ABBREVIATIONS = {"e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "a.m.": "a m", "p.m.": "p m"}
_UNITS = {
    "km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters", "m": "meters", "g": "grams",
    "lb": "pounds", "lbs": "pounds", "oz": "ounces", "mi": "miles", "mph": "miles per hour", "kph": "kilometers per hour",
    "hz": "hertz", "khz": "kilohertz", "ms": "milliseconds", "s": "seconds", "h": "hours", "min": "minutes",
}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_SYMBOLS = {"&": " and ", "@": " at ", "+": " plus ", "=": " equals ", "#": " number ", "/": " slash ",
            "*": " star ", "°": " degrees ", "%": " percent "}
_CLAUSE_MARKS = {";": ",", "(": ",", ")": ",", "[": ",", "]": ",", "{": ",", "}": ",", "—": ",",
                 "–": ",", "…": "."}
_DROPPED = set("\"`_~^|\\<>")  # not spoken: quotes and typographic marks (documented mapping, not a silent loss)


def _words(number_text: str, **kwargs) -> str:
    return " " + num2words(number_text, lang="en", **kwargs).replace("-", " ").replace(",", "") + " "


def _money(match: re.Match) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    cents = int((match.group(3) or "0").ljust(2, "0")[:2])
    parts = []
    if whole or not cents:
        parts.append(f"{_words(str(whole)).strip()} {one if whole == 1 else many}")
    if cents:
        parts.append(f"{_words(str(cents)).strip()} {sub_one if cents == 1 else sub_many}")
    return " " + " and ".join(parts) + " "


def _time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        spoken = f"{_words(str(hours)).strip()} o'clock"
    elif minutes < 10:
        spoken = f"{_words(str(hours)).strip()} oh {_words(str(minutes)).strip()}"
    else:
        spoken = f"{_words(str(hours)).strip()} {_words(str(minutes)).strip()}"
    suffix = match.group(3)
    if suffix:
        spoken += " " + " ".join(suffix.lower().replace(".", ""))
    return f" {spoken} "


def _number(match: re.Match) -> str:
    return _number_words(match.group(0))


def _number_words(text: str) -> str:
    sign = ""
    if text.startswith("-"):
        sign, text = "minus ", text[1:]
    if "," in text:
        return " " + sign + _words(text.replace(",", "")).strip() + " "
    if "." in text:
        whole, frac = text.split(".")
        return " " + sign + _words(whole or "0").strip() + " point " + " ".join(
            _words(d).strip() for d in frac) + " "
    if not sign and len(text) == 4 and 1100 <= int(text) <= 2099:
        return _words(text, to="year")
    return " " + sign + _words(text).strip() + " "


def normalize_text(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Written English -> spoken words in `NORMALIZED_ALPHABET`. See the module docstring for the rules."""
    if not isinstance(text, str):
        raise EmptyTextError(f"expected a string, got {type(text).__name__}")
    if not text.strip():
        raise EmptyTextError("text is empty")
    if len(text) > max_chars:
        raise TextTooLongError(f"text has {len(text)} characters, more than the {max_chars} maximum")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_CLAUSE_MARKS.get(c, c) for c in text)
    out = []
    for position, char in enumerate(text):
        if char in _CURRENCIES or char in _SYMBOLS or ord(char) < 128:
            out.append(char)
            continue
        ascii_form = unidecode(char)
        if not ascii_form.strip() and not char.isspace():
            raise UnsupportedCharacterError(
                f"unsupported character {char!r} (U+{ord(char):04X}) at position {position} in {text[:60]!r}"
            )
        out.append(ascii_form)
    text = "".join(out)
    for abbr, spoken in _MULTI_ABBREVIATIONS.items():
        text = re.sub(rf"(?i)\b{re.escape(abbr)}", f" {spoken} ", text)
    text = re.sub(r"([$£€¥])\s?(\d[\d,]*)(?:\.(\d+))?", _money, text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?%", lambda m: f" {_number_words(m.group(1))} percent ", text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\s?([ap]\.?m\.?)?", _time, text, flags=re.IGNORECASE)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _words(m.group(1), to="ordinal"), text, flags=re.IGNORECASE)
    text = re.sub(
        r"\b(\d[\d,]*(?:\.\d+)?)\s?([a-zA-Z]+)\b",
        lambda m: f"{m.group(1)} {_UNITS.get(m.group(2).lower(), m.group(2))}",
        text,
    )
    text = re.sub(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?", _number, text)
    text = re.sub(
        r"\b([A-Za-z]+)\.",
        lambda m: _ABBREVIATIONS.get(m.group(1).lower(), m.group(0)) + (" " if m.group(1).lower() in _ABBREVIATIONS else ""),
        text,
    )
    text = text.replace(":", ",")  # after the time rule, which needs the colon
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = "".join(" " if c in _DROPPED else c for c in text)
    text = re.sub(r"(?<=\w)-(?=\w)", " ", text)  # well-known -> well known
    text = re.sub(r"\s*-{2,}\s*", ", ", text)
    text = text.replace("-", " ").lower()
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes made of apostrophes; keep "don't"
    for position, char in enumerate(text):
        if char not in NORMALIZED_ALPHABET and not char.isspace():
            raise UnsupportedCharacterError(f"unsupported character {char!r} at position {position} in {text[:60]!r}")
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([,.?!])", r"\1", text)  # no space before punctuation
    text = re.sub(r"([,.?!])(?:\s*[,.?!])+", lambda m: _strongest(m.group(0)), text)
    text = re.sub(r"([,.?!])(?=[a-z'])", r"\1 ", text).strip()
    text = re.sub(r"^[,.?!\s]+", "", text)
    if not re.search(r"[a-z]", text):
        raise EmptyTextError("text has nothing to say after normalization")
    if text[-1] == ",":
        text = text[:-1]
    if text[-1] not in ".?!":
        text += "."
    if len(text) > max_chars:
        raise TextTooLongError(f"normalized text has {len(text)} characters, more than the {max_chars} maximum")
    return text


def _strongest(marks: str) -> str:
    """A run of punctuation collapses to its strongest mark: ? over ! over . over ,."""
    for mark in ("?", "!", ".", ","):
        if mark in marks:
            return mark
    return ","


def split_clauses(normalized: str) -> list[tuple[str, str]]:
    """Normalized text -> [(clause words, closing mark)], e.g. "hi, you." -> [("hi", ","), ("you", ".")]."""
    return [(words.strip(), mark) for words, mark in re.findall(r"([^,.?!]+)([,.?!])", normalized) if words.strip()]
