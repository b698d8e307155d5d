"""Data pipeline throughput: corpus generation, feature extraction, batch serving.

    python -m benchmarks.data_pipeline                 # 400 utterances, prints a table
    python -m benchmarks.data_pipeline --record        # ... and appends it to benchmarks/RESULTS.md

Each stage runs on a fresh temporary cache. "x real time" is seconds of audio processed per wall-clock second.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time

import numpy as np

from mmspeech_jax.host_memory import keep_freed_memory
from benchmarks.measure import machine, record


def run(num_utterances: int, batch_size: int, epochs: int) -> list[tuple[str, str, str]]:
    from mmspeech_jax.data.feature_cache import FeatureConfig, default_feature_cache
    from mmspeech_jax.data.pipeline import PipelineConfig, make_batch_iterator
    from mmspeech_jax.data.synthetic_corpus import CorpusConfig, generate_corpus

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        corpus = generate_corpus(CorpusConfig(name="bench", num_utterances=num_utterances), tmp, progress=False)
        seconds = time.perf_counter() - start
        audio_s = sum(u.seconds for u in corpus.utterances)
        rows.append(("corpus generation (espeak-ng, 2 processes)", f"{num_utterances / seconds:.1f} utt/s",
                     f"{audio_s / seconds:.0f}x real time ({seconds:.1f} s for {audio_s / 60:.1f} min of audio)"))

        start = time.perf_counter()
        cache = default_feature_cache(corpus, FeatureConfig(), tmp, progress=False)
        seconds = time.perf_counter() - start
        rows.append(("feature extraction (mel + YIN F0 + energy, JAX CPU)", f"{len(cache) / seconds:.1f} utt/s",
                     f"{audio_s / seconds:.0f}x real time ({seconds:.1f} s, compiles included)"))

        config = PipelineConfig(batch_size=batch_size, num_epochs=epochs)
        iterator = make_batch_iterator(cache, "train", config, verbose=False)
        start = time.perf_counter()
        batches = utterances = 0
        for batch in iterator:
            batches += 1
            utterances += int(np.sum(batch["example_mask"]))
        seconds = time.perf_counter() - start
        rows.append((f"batch serving (Grain, batch {batch_size}, K={iterator.num_shapes} shapes)",
                     f"{batches / seconds:.1f} batches/s", f"{utterances / seconds:.0f} utt/s over {epochs} epochs"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = run(args.utterances, args.batch_size, args.epochs)
    command = "python -m benchmarks.data_pipeline" + (f" --utterances {args.utterances}" if args.utterances != 400 else "")
    table = ["| stage | rate | detail |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    header = (f"### Data pipeline — {datetime.date.today().isoformat()}\n\n"
              f"Command: `{command}`  \nMachine: {machine()}\n")
    text = header + "\n" + "\n".join(table) + "\n"
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    keep_freed_memory()  # before JAX starts its CPU backend (host_memory.py)
    main()
