"""Several batch iterators on one schedule, for objectives that read more than one stream (the joint speech–text
model: unpaired speech, unpaired text and paired data).

Step k draws the next batch of every stream named in `schedule[k % len(schedule)]` and gives {name: batch}:
`schedule=(("speech", "text", "paired"),)` zips the streams (every step sees all three), `(("paired",), ("speech",),
("text",))` alternates them (each step one stream: fewer step shapes to compile, a third of the work per step). The
state (`get_state` / `set_state`, saved in the trainer's checkpoints) is the schedule position and each stream's own
state, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from mmspeech_jax.errors import ConfigError


class InterleavedBatches:
    """Infinite iterator of {name: batch} over named iterators (each with `get_state` / `set_state`) on a
    schedule of name tuples."""

    def __init__(self, iterators: dict, schedule: tuple[tuple[str, ...], ...]):
        if not iterators or not schedule or not all(schedule):
            raise ConfigError("InterleavedBatches needs named iterators and a schedule of non-empty name tuples")
        unknown = {n for names in schedule for n in names} - set(iterators)
        if unknown:
            raise ConfigError(f"InterleavedBatches: schedule names {sorted(unknown)} have no iterator")
        self.iterators, self.schedule, self.position = dict(iterators), tuple(map(tuple, schedule)), 0

    @property
    def shapes(self) -> tuple:
        """Every stream's batch shapes, concatenated (their count bounds the compiled step shapes of an
        alternating schedule)."""
        return tuple(s for it in self.iterators.values() for s in getattr(it, "shapes", ()))

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        names = self.schedule[self.position % len(self.schedule)]
        self.position += 1
        return {name: next(self.iterators[name]) for name in names}

    def get_state(self) -> dict:
        """{"position": steps drawn, "streams": {name: that iterator's state}}."""
        return {"position": self.position, "streams": {n: it.get_state() for n, it in self.iterators.items()}}

    def set_state(self, state: dict) -> None:
        """Continue from a `get_state` result (the same stream names, else `ConfigError`)."""
        if set(state["streams"]) != set(self.iterators):
            raise ConfigError(f"saved data state has streams {sorted(state['streams'])}, this run has "
                              f"{sorted(self.iterators)}")
        self.position = int(state["position"])
        for name, it in self.iterators.items():
            it.set_state(state["streams"][name])
