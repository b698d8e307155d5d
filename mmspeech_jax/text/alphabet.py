"""The alphabet of normalized text: what `normalize.normalize_text` returns and what the ASR's character table
spells. Its own module, free of the normalizer's dependencies (num2words, unidecode), so the models and the
benchmarks import on machines that have only jax, flax, optax, chex and numpy (the GPU image)."""

PUNCTUATION = (",", ".", "?", "!")
NORMALIZED_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz' ") | frozenset(PUNCTUATION)
