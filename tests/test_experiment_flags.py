"""The experiments' flags are checked before any data is generated or loaded: a bad value stops the command with
argparse's one-line error (exit status 2) and leaves nothing behind. TrainerConfig checks its own fields."""

import importlib

import pytest

from mmspeech_jax.errors import ConfigError
from mmspeech_jax.train.trainer import TrainerConfig

EXPERIMENTS = ("ljspeech_tts", "ljspeech_asr", "multispeaker_tts", "ssl_finetune")
BAD = [
    (["--eval_every", "0"], "eval_every must be an integer >= 1"),
    (["--checkpoint_every", "-5"], "checkpoint_every must be an integer >= 1"),
    (["--steps", "-1"], "steps must be an integer >= 0"),
    (["--patience", "-1"], "patience must be None or an integer >= 0"),
    (["--micro_batches", "0"], "micro_batches must be an integer >= 1"),
    (["--batch_size", "0"], "PipelineConfig.batch_size must be an integer >= 1"),
    (["--batch_size", "6", "--micro_batches", "4"], "does not split into --micro_batches 4"),
    (["--learning_rate", "nan"], "--learning_rate must be a positive number"),
    (["--corpus_size", "0"], "CorpusConfig.num_utterances must be an integer >= 1"),
    # --set overrides build the model config at parse time (stand-in data sizes), not after the data loads
    (["--set", "heads=0"], "Config.heads must be an integer >= 1"),
    (["--set", "dropout=1.5"], "Config.dropout must be a finite number >= 0 and < 1, got 1.5"),
    (["--set", "dim=\"wide\""], "Config.dim must be an integer >= 1, got 'wide'"),
    (["--set", "nonexistent=1"], "has no field 'nonexistent'"),
]
# Flags of one experiment's own stages, checked by the same rule (any *learning_rate positive, any *_steps >= 0).
OWN = {
    "ssl_finetune": [(["--pretrain_learning_rate", "-1"], "--pretrain_learning_rate must be a positive number"),
                     (["--pretrain_steps", "-3"], "--pretrain_steps must be >= 0")],
    "multispeaker_tts": [(["--adapt_learning_rate", "inf"], "--adapt_learning_rate must be a positive number"),
                         (["--adapt_steps", "-1"], "--adapt_steps must be >= 0"),
                         (["--classifier_steps", "-2"], "--classifier_steps must be >= 0"),
                         (["--adapter_dim", "0"], "HyperSpeechConfig.adapter_dim must be an integer >= 1")],
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_bad_trainer_flags_stop_before_any_data(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tmp_path / "cache"))  # a corpus generated here would show
    main = importlib.import_module(f"experiments.{experiment}").main
    for flags, message in BAD + OWN.get(experiment, []):
        with pytest.raises(SystemExit) as info:
            main(["--workdir", str(tmp_path / "w"), *flags])
        assert info.value.code == 2, flags
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert message in last, (flags, last)
    assert not (tmp_path / "w").exists() and not (tmp_path / "cache").exists()


def test_trainer_config_accepts_its_defaults_and_zero_steps_and_rejects_bad_fields():
    TrainerConfig()
    TrainerConfig(steps=0, patience=0)  # zero steps: evaluate a restored run; patience 0: stop at the first miss
    for bad in (dict(log_every=0), dict(keep_checkpoints=0), dict(steps=1.5), dict(eval_every=True),
                dict(patience=2.0)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainerConfig(**bad)
