"""Batches of sentences for the text language model: seeded epoch order, a few padded lengths, exact resume.

Each batch is {"tokens": (B, L) int32, "mask": (B, L) bool} in `models/text_lm.encode_sentences`' layout, with L
the smallest of `lengths` that holds the batch's longest sentence plus its two boundaries (so a run compiles at
most len(lengths) step shapes). Epoch e draws a permutation from (seed, e), sorts each window of `group` batches'
worth of it by length (so a batch holds sentences of similar length and pads little), cuts the windows into
batches and shuffles their order with the same generator. The state (`get_state` / `set_state`, saved in the
trainer's checkpoints) is the epoch and the batch position in it, so a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

import numpy as np

from mmspeech_jax.errors import ConfigError


class TextBatches:
    """Infinite iterator over batches of `id_lists` (lists of symbol ids, boundaries not included)."""

    def __init__(self, id_lists, batch_size: int, lengths=(64, 128, 192), seed: int = 0, shuffle: bool = True,
                 group: int = 50):
        if batch_size < 1 or group < 1 or not id_lists:
            raise ConfigError(f"TextBatches: need batch_size >= 1, group >= 1 and sentences, got {batch_size}, "
                              f"{group}, {len(id_lists)}")
        self.id_lists, self.batch_size, self.seed, self.shuffle = list(id_lists), batch_size, seed, shuffle
        self.group = group
        self._cached = None  # (epoch, its batches): a pure function of (seed, epoch), computed once per epoch
        self.lengths = tuple(sorted(lengths))
        self.epoch, self.position = 0, 0

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """The (batch size, length) shapes batches take: one per length rung."""
        return tuple((self.batch_size, length) for length in self.lengths)

    def _batches(self, epoch: int) -> list[np.ndarray]:
        """Epoch `epoch`'s full batches (index arrays), in visiting order."""
        count = len(self.id_lists)
        if not self.shuffle:
            return [np.arange(s, s + self.batch_size) for s in range(0, count - self.batch_size + 1, self.batch_size)]
        rng = np.random.default_rng([self.seed, epoch])
        order, window = rng.permutation(count), self.batch_size * self.group
        lengths = np.array([len(ids) for ids in self.id_lists])
        batches = []
        for start in range(0, count - self.batch_size + 1, window):
            chunk = order[start: start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[s: s + self.batch_size] for s in range(0, len(chunk) - self.batch_size + 1,
                                                                   self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, indices) -> dict[str, np.ndarray]:
        """Sentences at `indices` -> {"tokens": (B, L) int32, "token_mask": (B, L) bool}, padded to the smallest length
        rung that holds the longest (rows past the sentences are empty, mask False)."""
        from mmspeech_jax.models.text_lm import encode_sentences

        sentences = [self.id_lists[i] for i in indices]
        longest = max(len(s) for s in sentences) + 2
        length = next((n for n in self.lengths if n >= longest), self.lengths[-1])
        tokens, mask = encode_sentences(sentences + [[]] * (self.batch_size - len(sentences)), length)
        mask[len(sentences):] = False  # filler rows predict nothing
        return {"tokens": tokens, "mask": mask}

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._batches(self.epoch))
        if self.position >= len(self._cached[1]):
            self.epoch, self.position = self.epoch + 1, 0
            self._cached = (self.epoch, self._batches(self.epoch))
        indices = self._cached[1][self.position]
        self.position += 1
        return self.batch(indices)

    def one_pass(self):
        """Every sentence once, in order, the last batch filled with masked rows (for evaluation)."""
        for start in range(0, len(self.id_lists), self.batch_size):
            yield self.batch(range(start, min(start + self.batch_size, len(self.id_lists))))

    def get_state(self) -> dict:
        """The position (epoch, batch) for an exact resume."""
        return {"epoch": self.epoch, "position": self.position}

    def set_state(self, state: dict) -> None:
        """Continue from a position returned by `get_state`."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
