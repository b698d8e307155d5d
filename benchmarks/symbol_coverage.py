"""How often typed English gives espeak phonemes outside the versioned symbol table, and what they become.

    python -m benchmarks.symbol_coverage            # prints a table
    python -m benchmarks.symbol_coverage --record   # ... and appends it to benchmarks/RESULTS.md

Runs the espeak tokenizer over every sentence of the corpus's natural text source (WordNet examples + fortunes)
and the natural evaluation set, counts the sentences holding a mnemonic the table lacks, and lists each such
mnemonic with its count, the symbol `text/symbol_fallback.nearest_symbol` gives it, and one example sentence.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import time

from benchmarks.measure import machine, record


def run() -> tuple[list[tuple], list[tuple]]:
    from mmspeech_jax.data.english_text import english_sentences, evaluation_sentences
    from mmspeech_jax.text.symbol_fallback import nearest_symbol
    from mmspeech_jax.text.tokenizer import EspeakTokenizer

    tok = EspeakTokenizer()
    totals, counts, examples = [], collections.Counter(), {}
    for name, sentences in (("text source", english_sentences()), ("natural evaluation set", evaluation_sentences())):
        start, hit = time.perf_counter(), 0
        for sentence in sentences:
            outside = [t for t in tok.tokens(sentence) if t not in tok.table]
            hit += bool(outside)
            for symbol in outside:
                counts[symbol] += 1
                examples.setdefault(symbol, sentence)
        totals.append((name, len(sentences), hit, f"{100 * hit / len(sentences):.2f} %",
                       f"{time.perf_counter() - start:.1f} s"))
    symbols = [(repr(s), n, repr(nearest_symbol(s, tok.table)), examples[s][:70]) for s, n in counts.most_common()]
    return totals, symbols


def table(rows, header) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", action="store_true", help="append the tables to benchmarks/RESULTS.md")
    args = p.parse_args()
    totals, symbols = run()
    text = (table(totals, ("sentences", "count", "with a phoneme outside the table", "share", "tokenizer time")) + "\n\n"
            + table(symbols, ("mnemonic", "occurrences", "nearest table symbol", "first sentence")))
    print(text)
    if args.record:
        record(f"### Phonemes outside the espeak table — {datetime.date.today()}\n\nCommand: "
               f"`python -m benchmarks.symbol_coverage --record`  \nMachine: {machine()}\n\n{text}\n")


if __name__ == "__main__":
    main()
