"""The nearest table symbol for a phoneme espeak-ng emits only in rare phrase contexts.

espeak-ng's en-us output holds a few mnemonics that no dictionary word gives on its own, so the versioned espeak
table (built from every CMUdict word) lacks them: a secondary stress on a reduced vowel (`,a#`), a pause mark glued
to the next phoneme (`_!w`), stress on a vowel that is otherwise unstressed (`'u`), a lengthened vowel in an
elongated spelling (`a#:` in "thaaaat"). Measured over the 56 440 natural sentences of the corpus's text source,
132 sentences (0.23 %) hold one (`python -m benchmarks.symbol_coverage`).

Extending the table would change its version and with it every trained model's input layer, so typed text instead
maps each such mnemonic to the nearest symbol the table has, by one fixed rule, tried in this order:

0. the mnemonic as written;
1. without a leading pause mark (`_!w` -> `w`; espeak's pauses are silence, never tokens), and of that:
2. its length as written, then without a trailing length mark `:`, then with one added;
3. for each of those, its stress as written, then the other stress mark (`'` <-> `,`), then unstressed, then
   primary, then secondary.

The first candidate in the table wins; none -> `UnknownSymbolError`. The embedded corpus never substitutes (it
skips such sentences, so every training utterance is exactly what espeak said); `EspeakTokenizer.encode` does, and
reports every substitution it made with a `SymbolSubstitutionWarning` (one line), so nothing changes silently.
"""

from __future__ import annotations

from mmspeech_jax.errors import UnknownSymbolError

STRESS_MARKS = ("'", ",")
PAUSE_PREFIXES = ("_^_", "_!", "_:", "_|", "_")  # longest first: espeak's pause mnemonics (espeak.PAUSE_MNEMONICS)


class SymbolSubstitutionWarning(UserWarning):
    """Typed text held phonemes outside the symbol table; the message names each substitution made."""


def _without_pause(symbol: str) -> str:
    for prefix in PAUSE_PREFIXES:
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            return symbol[len(prefix):]
    return symbol


def _lengths(symbol: str) -> list[str]:
    if symbol.endswith(":") and len(symbol) > 1:
        return [symbol, symbol[:-1]]
    return [symbol, symbol + ":"]


def _stresses(symbol: str) -> list[str]:
    stress, bare = (symbol[0], symbol[1:]) if symbol[:1] in STRESS_MARKS and len(symbol) > 1 else ("", symbol)
    other = {"'": ",", ",": "'"}.get(stress)
    ordered = [symbol] + ([other + bare] if other else []) + [bare, "'" + bare, "," + bare]
    return list(dict.fromkeys(ordered))


def candidates(symbol: str) -> list[str]:
    """Every spelling the rule tries for `symbol`, in order, without repeats (the first is `symbol` itself)."""
    core = _without_pause(symbol)
    return list(dict.fromkeys([symbol] + [s for length in _lengths(core) for s in _stresses(length)]))


def nearest_symbol(symbol: str, table) -> str:
    """The first of `candidates(symbol)` that `table` (a `SymbolTable`) holds; `UnknownSymbolError` when none."""
    for candidate in candidates(symbol):
        if candidate in table:
            return candidate
    raise UnknownSymbolError(f"symbol {symbol!r} is not in the {table.name} table ({table.version}) and has no "
                             f"near spelling there")


def substitute(symbols, table) -> tuple[list[str], list[tuple[str, str]]]:
    """symbols -> (the same list with each symbol outside `table` replaced by `nearest_symbol`, the (from, to)
    pairs replaced, in order of first occurrence, each once)."""
    out, made = [], {}
    for s in symbols:
        if s in table:
            out.append(s)
        else:
            made.setdefault(s, nearest_symbol(s, table))
            out.append(made[s])
    return out, list(made.items())
