"""Decoders that turn model outputs into symbol sequences (CTC greedy and prefix beam search)."""
