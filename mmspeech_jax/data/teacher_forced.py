"""FastSpeech2's teacher-forced mels of corpus utterances, for fine-tuning a vocoder on what the TTS really outputs.

Teacher forcing runs the trained model on an utterance's tokens with its aligner's durations over the real frames
(`model.apply(..., train=False)`), so the predicted mel (`mel_post`) has the recording's T frames, frame for frame:
a vocoder can learn to turn the TTS's (smoother) mels into the recording's waveform. Written once into
`out_dir` as `mel.f32` (F, M) float32, memory-mapped, with `index.json` (cache row, id, frame offset of each
utterance, and the TTS workdir and step they came from); `TeacherForcedMels[cache_row]` -> (T, M).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from mmspeech_jax.errors import CorpusMismatchError, CorpusNotFoundError


class TeacherForcedMels:
    """Read-only: `rows` (cache rows held), `mels[cache_row]` -> (T, M) float32, `source` (TTS workdir and step)."""

    def __init__(self, path):
        path = Path(path)
        if not (path / "index.json").is_file():
            raise CorpusNotFoundError(f"no complete teacher-forced mels at {path}")
        index = json.loads((path / "index.json").read_text())
        self.source, self.rows = index["source"], np.asarray(index["rows"], np.int64)
        self._offsets = np.asarray(index["offsets"], np.int64)
        self._position = {int(r): k for k, r in enumerate(self.rows)}
        self._mel = np.memmap(path / "mel.f32", np.float32, "r", shape=(int(self._offsets[-1]), index["n_mels"]))

    def __contains__(self, row: int) -> bool:
        return int(row) in self._position

    def __getitem__(self, row: int) -> np.ndarray:
        k = self._position[int(row)]
        return np.array(self._mel[self._offsets[k]: self._offsets[k + 1]])


def build_teacher_forced_mels(tts_workdir, cache, rows, out_dir, batch_size: int = 16, *,
                              progress: bool = True) -> TeacherForcedMels:
    """Runs the TTS of `tts_workdir` (its newest checkpoint) teacher-forced on the cache rows `rows` (one split's)
    and writes their mels into `out_dir` (reused when it already holds the same rows from the same workdir and
    step; written under a temporary name, then renamed)."""
    from mmspeech_jax.data.pipeline import PipelineConfig, make_batch_iterator
    from mmspeech_jax.models.fastspeech2 import FastSpeech2, FastSpeech2Config, model_inputs
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    out_dir, rows = Path(out_dir), np.sort(np.asarray(rows, np.int64))
    record = read_workdir_config(tts_workdir)
    if record.get("task", "tts") != "tts":
        raise CorpusMismatchError(f"{tts_workdir} is not a FastSpeech2 workdir (task {record.get('task')!r})")
    if record.get("features") != cache.config:
        raise CorpusMismatchError(f"{tts_workdir} was trained on other features than this corpus's cache")
    params, step = restore_params(Path(tts_workdir))
    source = {"tts_workdir": str(Path(tts_workdir).absolute()), "step": int(step)}
    if (out_dir / "index.json").is_file():
        existing = TeacherForcedMels(out_dir)
        if existing.source == source and np.array_equal(existing.rows, rows):
            return existing
        shutil.rmtree(out_dir)  # mels of another TTS or step: ours to rebuild (they live in the vocoder workdir)
    config = FastSpeech2Config.from_dict(record["model"])
    model = FastSpeech2(config)
    forward = jax.jit(lambda p, b: model.apply({"params": p}, b, train=False)[0]["mel_post"])
    split = cache.splits[int(rows[0])]
    pipeline = PipelineConfig(batch_size=batch_size, num_buckets=4, num_epochs=1, shuffle=False)
    mels = {}
    batches = make_batch_iterator(cache, split, pipeline, positions=rows, verbose=False, process_index=0,
                                  process_count=1)
    for batch in tqdm(batches, desc="teacher-forced mels", unit="batch", disable=not progress):
        predicted = np.asarray(forward(params, model_inputs(batch, config)))
        for r in np.flatnonzero(batch["example_mask"]):
            mels[int(batch["index"][r])] = predicted[r, : int(batch["frame_lengths"][r])]
    partial = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    offsets = [0]
    with open(partial / "mel.f32", "wb") as f:
        for row in rows:
            f.write(np.ascontiguousarray(mels[int(row)], np.float32).tobytes())
            offsets.append(offsets[-1] + mels[int(row)].shape[0])
    (partial / "index.json").write_text(json.dumps({"source": source, "rows": rows.tolist(), "offsets": offsets,
                                                    "ids": [cache.ids[int(r)] for r in rows],
                                                    "n_mels": cache.n_mels}))
    os.replace(partial, out_dir)
    return TeacherForcedMels(out_dir)
