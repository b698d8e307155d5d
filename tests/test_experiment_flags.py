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
    (["--max_consecutive_skipped", "-1"], "max_consecutive_skipped must be None or an integer >= 1, got -1"),
    (["--mesh", "eight"], "--mesh must look like 8x1 or 2x4"),
    (["--mesh", "0x2"], "MeshConfig.data must be an integer >= 1, got 0"),
]
NO_LJSPEECH = (["--data", "ljspeech", "--data_dir", "/nonexistent/tfds"], "LJSpeech is not prepared under")
# Flags of one experiment's own stages, checked by the same rule (any *learning_rate positive, any *_steps >= 0),
# and its evaluation's (--num_samples >= 0, --beam_width >= 1).
ASR_EVAL = [(["--num_samples", "-1"], "--num_samples must be >= 0, got -1"),
            (["--beam_width", "0"], "--beam_width must be >= 1, got 0")]
OWN = {
    "ljspeech_tts": [(["--num_samples", "-2"], "--num_samples must be >= 0, got -2")],
    "ljspeech_asr": ASR_EVAL,
    "ssl_finetune": [(["--pretrain_learning_rate", "-1"], "--pretrain_learning_rate must be a positive number"),
                     (["--pretrain_steps", "-3"], "--pretrain_steps must be >= 0")] + ASR_EVAL,
    "multispeaker_tts": [(["--adapt_learning_rate", "inf"], "--adapt_learning_rate must be a positive number"),
                         (["--adapt_steps", "-1"], "--adapt_steps must be >= 0"),
                         (["--classifier_steps", "-2"], "--classifier_steps must be >= 0"),
                         (["--num_samples", "-1"], "--num_samples must be >= 0, got -1"),
                         (["--adapter_dim", "0"], "HyperSpeechConfig.adapter_dim must be an integer >= 1")],
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_bad_trainer_flags_stop_before_any_data(experiment, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tmp_path / "cache"))  # a corpus generated here would show
    main = importlib.import_module(f"experiments.{experiment}").main
    data = [NO_LJSPEECH] if experiment != "multispeaker_tts" else []  # it always generates its multi-voice corpus
    for flags, message in BAD + OWN.get(experiment, []) + data:
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


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_mesh_the_devices_cannot_form_stops_before_any_data(experiment, tmp_path, monkeypatch):
    import jax

    assert jax.device_count() == 8  # tests/conftest.py: 8 simulated CPU devices
    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tmp_path / "cache"))
    main = importlib.import_module(f"experiments.{experiment}").main
    for flags, message in ((["--mesh", "3x1"], "needs 3 devices, 8 are available"),
                           (["--mesh", "4x2", "--batch_size", "12"], "--batch_size 12 does not split over the 8 devices")):
        with pytest.raises(ConfigError, match=message):
            main(["--workdir", str(tmp_path / "w"), *flags])
    assert not (tmp_path / "w").exists() and not (tmp_path / "cache").exists()


@pytest.mark.filterwarnings("ignore:.*found in sys.modules")  # runpy, as the package is already imported
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_python_dash_m_prints_a_user_error_in_one_line(experiment, tmp_path, monkeypatch, capsys):
    """`python -m experiments.X` (run here as __main__ in this process): an MMSpeechError raised after parsing is
    one line on stderr and exit status 2, no traceback."""
    import runpy
    import sys

    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", [f"{experiment}.py", "--workdir", str(tmp_path / "w"), "--mesh", "3x1"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module(f"experiments.{experiment}", run_name="__main__")
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"{experiment}.py: error: mesh data=3 x fsdp=1 needs 3 devices"), err
    assert not any("Traceback" in line for line in err)


def test_run_command_lets_bugs_raise():
    from experiments.flags import run_command

    def buggy(argv=None):
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        run_command(buggy)
