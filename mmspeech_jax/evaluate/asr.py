"""Recognition error rates with jiwer: character (CER) and word (WER) error rates over a list of utterances.

Both sides are compared after `normalize_text` minus clause marks (the ASR's target alphabet): lower-case letters,
apostrophes, single spaces. Rates are corpus-level (total edits / total reference length), as jiwer computes them
for lists.
"""

from __future__ import annotations

import sys

import jiwer

from mmspeech_jax.text.normalize import PUNCTUATION, normalize_text


def asr_normalize(text: str) -> str:
    """Normalized text without clause marks, of any length (a long recording's transcript too); '' for text the
    normalizer rejects (empty, or nothing it can spell)."""
    from mmspeech_jax.errors import TextError

    try:
        text = normalize_text(text, max_chars=sys.maxsize)
    except TextError:
        return ""
    for mark in PUNCTUATION:
        text = text.replace(mark, " ")
    return " ".join(text.split())


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float]:
    """{"cer", "wer", "utterances"} over paired lists (references must not all be empty)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references vs {len(hypotheses)} hypotheses")
    refs = [asr_normalize(r) for r in references]
    hyps = [asr_normalize(h) for h in hypotheses]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    if not pairs:
        raise ValueError("no non-empty reference to score against")
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"cer": float(jiwer.cer(refs, hyps)), "wer": float(jiwer.wer(refs, hyps)), "utterances": len(pairs)}
