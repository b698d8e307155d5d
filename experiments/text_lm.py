"""A character-level Transformer language model on the zoo's English text (the text modality; shallow fusion).

    python -m experiments.text_lm                            # base preset, ./workdir/text_lm (~9 min on 2 cores)
    python -m experiments.text_lm --preset tiny --steps 20 --workdir /tmp/lm

Text: the natural English sentences of `data/english_text.py` (WordNet examples, fortune cookies) whose normalized
form falls in the embedded corpus's "train" split (the split hash of `synthetic_corpus.split_of`, so the ASR's
validation and test sentences stay unseen), plus `--template_sentences` sentences of the generator's templates
(numbers, dates, money, times, abbreviations). Validation: the natural sentences of the "validation" split.

Rerunning the same command resumes. Writes config.json (task "lm"), symbols.json (the character table the CTC
models share), checkpoints/, tensorboard/, metrics.jsonl and report.json (validation and natural-evaluation-set
bits per character, steps, wall time) into the workdir. `mmspeech transcribe --lm WORKDIR` and
`python -m experiments.ljspeech_asr --lm WORKDIR` then fuse it into the CTC beam search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import jax
import numpy as np

from experiments.configs.text_lm import LMTextConfig, TextLMExperimentConfig, TextPipelineConfig, config
from experiments.flags import (add_trainer_args, build_mesh, mesh_config_from_flag, parse_tree, run_command,
                               trainer_config)
from experiments.wiring import fit_summary, fit_tree, write_config, write_report
from mmspeech_jax.data.english_text import evaluation_sentences
from mmspeech_jax.data.sentences import sentence
from mmspeech_jax.data.synthetic_corpus import CorpusConfig, split_of
from mmspeech_jax.data.text_batches import TextBatches
from mmspeech_jax.data.unpaired_text import natural_sentences_by_split
from mmspeech_jax.models.text_lm import PRESETS, TextLM, encode_sentences, make_lm_loss_fn
from mmspeech_jax.text.tokenizer import CharacterTokenizer
from mmspeech_jax.train.init import init_params as compiled_init


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="workdir/text_lm")
    p.add_argument("--preset", default="base", choices=sorted(PRESETS))
    p.add_argument("--template_sentences", type=int, default=20000,
                   help="generator sentences (numbers, dates, money, ...) added to the natural text")
    p.add_argument("--max_sentences", type=int, default=None, help="use only the first N training sentences")
    add_trainer_args(p, steps=600, learning_rate=2e-3, eval_every=200)
    p.set_defaults(batch_size=64)
    return parse_tree(p, argv, from_flags)


def from_flags(args) -> TextLMExperimentConfig:
    """The tree the flags describe."""
    tree = config(args.preset, steps=args.steps, learning_rate=args.learning_rate, batch_size=args.batch_size)
    return dataclasses.replace(tree, text=LMTextConfig(args.template_sentences, args.max_sentences),
                               pipeline=TextPipelineConfig(args.batch_size, args.seed), trainer=trainer_config(args),
                               mesh=mesh_config_from_flag(args.mesh))


def text_splits(template_sentences: int, seed: int = 0) -> dict[str, list[str]]:
    """Normalized sentences by split: "train" (natural train-split sentences + templates), "validation"."""
    tokenizer, corpus = CharacterTokenizer(), CorpusConfig()
    splits = natural_sentences_by_split(("train", "validation"), corpus)
    for index in range(template_sentences):
        normalized = tokenizer.normalize(sentence(seed + 1, index)[1])
        if split_of(normalized, corpus.validation_fraction, corpus.test_fraction) == "train":
            splits["train"].append(normalized)
    return splits


def bits_per_character(model, params, id_lists, batch_size: int = 64) -> float:
    """Mean -log2 p of every symbol and end boundary of the sentences (the start boundary is given)."""
    loss_fn = jax.jit(lambda p, b: make_lm_loss_fn(model)(p, b, jax.random.PRNGKey(0), False, 0)[1])
    total = count = 0.0
    for batch in TextBatches(id_lists, batch_size, lengths=(model.config.max_len,), shuffle=False).one_pass():
        parts = jax.device_get(loss_fn(params, batch))
        predicted = float(parts["counts"]["tokens"])
        total, count = total + float(parts["nll"]) * predicted, count + predicted
    return total / max(count, 1.0) / math.log(2)


def main(argv=None):
    args, tree = parse_args(argv)
    mesh = build_mesh(tree.mesh, tree.pipeline.batch_size)  # before any text loads
    workdir = Path(args.workdir)
    config, pipeline = tree.model, tree.pipeline
    tokenizer = CharacterTokenizer()
    splits = text_splits(tree.text.template_sentences, pipeline.seed)
    encode = lambda texts: [list(tokenizer.encode(t, normalized=True)) for t in texts]
    train_ids = encode(splits["train"][: tree.text.max_sentences])
    val_ids = encode(splits["validation"])
    print(f"text: {len(train_ids)} training and {len(val_ids)} validation sentences")
    lock = write_config(workdir, "lm", tree, None, tokenizer.table)
    model = TextLM(config)
    lengths = tuple(n for n in (64, 128) if n < config.max_len) + (config.max_len,)
    train_batches = TextBatches(train_ids, pipeline.batch_size, lengths, seed=pipeline.seed)
    val_batches = TextBatches(val_ids, pipeline.batch_size, lengths, shuffle=False)
    first = encode_sentences([[1, 2]], lengths[0])
    params = compiled_init(model, {"params": jax.random.PRNGKey(tree.trainer.seed)}, *first, train=False)
    result = fit_tree(workdir, tree, params, make_lm_loss_fn(model), train_batches, eval_batches=val_batches.one_pass,
                      mesh=mesh)
    params = result.state.params
    report = {
        "validation_bits_per_char": bits_per_character(model, params, val_ids),
        "natural_bits_per_char": bits_per_character(
            model, params, encode([tokenizer.normalize(s) for s in evaluation_sentences()])),
        "train_sentences": len(train_ids), "validation_sentences": len(val_ids), "preset": args.preset,
        "params": sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params)), **fit_summary(result),
    }
    write_report(workdir, report)
    print(json.dumps(report, indent=1))
    lock.release()
    return report


if __name__ == "__main__":
    run_command(main)
