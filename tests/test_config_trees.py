"""Each experiment is one typed config tree: built from its flags, `--set` reaches any field of it (checked), the
parts that must agree are checked together, and config.json holds the tree and reads back into the same types
(for the tiny runs' own workdirs: tests/test_asr.py, which builds them once per worker)."""

import dataclasses
import importlib
import json

import pytest

from mmspeech_jax.config_tree import from_dict, from_record, replace_everywhere, to_dict
from mmspeech_jax.errors import ConfigError

EXPERIMENTS = ("ljspeech_tts", "ljspeech_asr", "ssl_finetune", "text_lm", "multispeaker_tts", "vocoder",
               "joint_speech_text")
# Per experiment: --set items that change a field in each part of its tree (values unlike the defaults).
CHANGES = {
    "ljspeech_tts": ["model.dropout=0.2", "pipeline.num_buckets=3", "optimizer.weight_decay=0.01",
                     "trainer.log_every=5", "loss.binarization_start=7", "evaluation.natural_curve_sentences=0",
                     "data.corpus_size=64"],
    "ljspeech_asr": ["model.layers=2", "evaluation.lm=\"/tmp/lm\"", "optimizer.b2=0.99", "data.source=\"embedded\""],
    "ssl_finetune": ["ssl.span_frames=4", "finetune.strategies=[\"full\", \"lora\"]", "pretrain_optimizer.b1=0.8"],
    "text_lm": ["text.max_sentences=100", "pipeline.batch_size=8", "model.layers=1"],
    "multispeaker_tts": ["model.fusion=\"concat\"", "adaptation.steps=7", "evaluation.asr_workdir=\"/tmp/asr\""],
    "vocoder": ["model.mel_weight=30", "discriminator_optimizer.learning_rate=1e-4", "pipeline.segment_frames=16",
                "teacher_forcing.tts_utterances=9"],
    "joint_speech_text": ["model.text_mask_probability=0.2", "rows.rows=[\"joint_asr\"]",
                          "pretrain_trainer.eval_every=50", "evaluation.intelligibility_sentences=3"],
}


def parse(experiment, *flags, workdir="/tmp/unused-workdir"):
    return importlib.import_module(f"experiments.{experiment}").parse_args(["--workdir", workdir, *flags])


def sets(items):
    return [x for item in items for x in ("--set", item)]


def leaf(tree, dotted: str):
    for name in dotted.split("."):
        tree = getattr(tree, name)
    return tree


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_tree_round_trips_through_config_json(experiment, tmp_path):
    _, default = parse(experiment, workdir=str(tmp_path / "w"))
    _, changed = parse(experiment, *sets(CHANGES[experiment]), workdir=str(tmp_path / "w"))
    assert changed != default
    for item in CHANGES[experiment]:  # each --set reached its field, with the field's type
        key, value = item.split("=", 1)
        expected = json.loads(value)
        got = leaf(changed, key)
        assert (list(got) if isinstance(got, tuple) else got) == expected, item
    for tree in (default, changed):
        record = json.loads(json.dumps({"task": "x", **to_dict(tree), "features": {"mel": {}}}))
        back = from_record(type(tree), record)
        assert back == tree and type(back) is type(tree)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_set_errors_name_the_item_and_stop_before_any_data(experiment, tmp_path, capsys):
    for items, message in ((["optimizer.nonexistent=1"], "OptimizerConfig has no field 'nonexistent'"),
                           (["trainer.eval_every=0"], "eval_every must be an integer >= 1"),
                           (["optimizer.total_steps=5"], "optimizer.total_steps (5) differs from trainer.steps")):
        with pytest.raises(SystemExit) as info:
            parse(experiment, *sets(items), workdir=str(tmp_path / "w"))
        assert info.value.code == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1], items
    assert not (tmp_path / "w").exists()


def test_steps_flag_moves_every_part_that_follows_the_run_length():
    _, tree = parse("ljspeech_tts", "--steps", "900")
    assert (tree.trainer.steps, tree.optimizer.total_steps, tree.optimizer.warmup_steps,
            tree.loss.binarization_start) == (900, 900, 90, 300)
    _, tree = parse("ljspeech_tts", "--steps", "300", "--set", "trainer.steps=600", "--set",
                    "optimizer.total_steps=600")  # both set: the tree is checked after all overrides
    assert tree.trainer.steps == tree.optimizer.total_steps == 600


def test_bare_set_keys_are_the_models_fields():
    _, tree = parse("ljspeech_tts", "--set", "dropout=0.25", "--set", "predictor.dropout=0.3")
    assert tree.model.dropout == 0.25 and tree.model.predictor.dropout == 0.3
    _, tree = parse("multispeaker_tts", "--set", "dropout=0.25")
    assert tree.model.backbone.dropout == 0.25


def test_from_dict_refuses_unknown_fields_and_reads_nested_optional_and_tuple_fields():
    from experiments.configs.ljspeech_asr import LJSpeechASRConfig, config

    tree = dataclasses.replace(config("tiny"), mesh=None)
    record = json.loads(json.dumps(to_dict(tree)))
    record["trainer"]["stray"] = 1
    with pytest.raises(ConfigError, match="LJSpeechASRConfig.trainer: unknown field 'stray'"):
        from_dict(LJSpeechASRConfig, record)
    from experiments.configs.ssl_finetune import FinetuneConfig
    from mmspeech_jax.train.sharding import MeshConfig
    from experiments.configs.ljspeech_tts import LJSpeechTTSConfig, config as tts_config

    tts = dataclasses.replace(tts_config("tiny"), mesh=MeshConfig(data=2, fsdp=4))
    back = from_dict(LJSpeechTTSConfig, json.loads(json.dumps(to_dict(tts))))
    assert back.mesh == MeshConfig(data=2, fsdp=4) and isinstance(back.model.conv_kernels, tuple)
    finetune = from_dict(FinetuneConfig, {"strategies": ["full"], "label_fraction": 1})
    assert finetune.strategies == ("full",) and isinstance(finetune.label_fraction, float)


def test_the_tree_reaches_the_trainer(tmp_path, monkeypatch):
    """The learning rate the trainer logs is the tree's schedule's (`--set optimizer.learning_rate`), and the
    tree's mesh is the one the trainer shards over (text_lm used to ignore --mesh)."""
    import experiments.wiring
    from experiments.text_lm import main
    from mmspeech_jax.train.optim import learning_rate_schedule

    meshes = []

    def recording_fit(*args, mesh=None, **kwargs):
        meshes.append(None if mesh is None else dict(mesh.shape))
        return fit(*args, mesh=mesh, **kwargs)

    fit = experiments.wiring.fit
    monkeypatch.setattr(experiments.wiring, "fit", recording_fit)
    workdir = tmp_path / "lm"
    main(["--preset", "tiny", "--steps", "4", "--eval_every", "4", "--workdir", str(workdir), "--no_progress",
          "--template_sentences", "20", "--max_sentences", "64", "--batch_size", "8", "--set",
          "optimizer.learning_rate=0.0123", "--set", "trainer.log_every=1", "--mesh", "4x2"])
    assert meshes == [{"data": 4, "fsdp": 2}]
    from experiments.configs.text_lm import TextLMExperimentConfig

    tree = from_record(TextLMExperimentConfig, json.loads((workdir / "config.json").read_text()))
    assert tree.optimizer.learning_rate == 0.0123
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    rates = {r["step"]: r["learning_rate"] for r in logged if "learning_rate" in r}
    schedule = learning_rate_schedule(tree.optimizer)
    assert rates and all(abs(rate - float(schedule(step - 1))) < 1e-9 or abs(rate - float(schedule(step))) < 1e-9
                         for step, rate in rates.items())


def test_replace_everywhere_sets_a_field_at_every_depth_and_nothing_else():
    """The joint model's config holds compute_dtype on both sides (and checks they agree): both change, every other
    field keeps its value, the rebuilt dataclasses run their checks, and an unknown name is one line."""
    from mmspeech_jax.models.joint_speech_text import preset

    config = preset("tiny", 40)
    out = replace_everywhere(config, compute_dtype="bfloat16")
    assert out.speech.compute_dtype == out.text.compute_dtype == "bfloat16"

    def without(record):
        if isinstance(record, dict):
            return {k: without(v) for k, v in record.items() if k != "compute_dtype"}
        return record

    assert without(to_dict(out)) == without(to_dict(config)) and to_dict(out) != to_dict(config)
    with pytest.raises(ConfigError, match="compute_dtype"):
        replace_everywhere(config, compute_dtype="float16")
    with pytest.raises(ConfigError, match="no field no_such_field"):
        replace_everywhere(config, no_such_field=1)


def test_the_vocoders_defaults_follow_the_generator_and_the_flags_and_config_agree():
    from experiments.configs.vocoder import BATCH_SIZE, LEARNING_RATE, STEPS, config

    for generator in ("istft", "hifigan"):
        _, tree = parse("vocoder", "--generator", generator)
        got = (tree.pipeline.batch_size, tree.trainer.steps, tree.optimizer.total_steps,
               tree.optimizer.learning_rate, tree.discriminator_optimizer.learning_rate)
        want = (BATCH_SIZE[generator], STEPS[generator], STEPS[generator], LEARNING_RATE[generator],
                LEARNING_RATE[generator])
        assert got == want, generator
        built = config(generator)  # the function a notebook calls gives the same run as the flags
        assert (built.pipeline.batch_size, built.trainer.steps, built.optimizer) == (
            tree.pipeline.batch_size, tree.trainer.steps, tree.optimizer), generator
    assert BATCH_SIZE["hifigan"] != BATCH_SIZE["istft"]  # so the check above can tell the generators apart
    # The complex spectrum loss goes with a head that predicts a phase: not the cpu preset's "gradient".
    assert (config("istft").model.istft.phase, config("istft").model.complex_weight) == ("gradient", 0.0)
    assert (config("istft", "paper").model.istft.phase, config("istft", "paper").model.complex_weight) == ("ramp", 10.0)
    _, tree = parse("vocoder", "--generator", "hifigan", "--batch_size", "4", "--learning_rate", "1e-4")
    assert (tree.pipeline.batch_size, tree.optimizer.learning_rate) == (4, 1e-4)  # explicit flags win
