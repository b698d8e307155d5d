"""`mmspeech synthesize` / `mmspeech export` and the export loader, on a tiny trained workdir."""

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from mmspeech_jax.cli import main as cli
from mmspeech_jax.synthesize import Synthesizer


@pytest.fixture(scope="module")
def workdir(tiny_tts_workdir):
    return tiny_tts_workdir


def test_workdir_contents(workdir):
    for name in ("config.json", "symbols.json", "metrics.jsonl", "report.json", "checkpoints", "tensorboard"):
        assert (workdir / name).exists(), name
    assert list((workdir / "plots").glob("*.png")) and list((workdir / "samples").glob("*.wav"))
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    import json

    report = json.loads((workdir / "report.json").read_text())
    for key in ("val_mel_l1", "mcd_dtw_db", "f0_rmse_hz", "duration_mae_frames", "aligner_boundary_error_ms",
                "aligner_path_probability", "steps", "wall_seconds", "steps_per_second"):
        assert report[key] is not None and np.isfinite(report[key]), key
    assert 0.0 < report["aligner_path_probability"] <= 1.0
    assert report["steps"] == 4 and report["compilations"] <= report["bucket_shapes"]
    train = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in train if r["split"] == "train"]
    # 4 steps: warm-up min(400, 4 // 10) = 0 steps, so the cosine from 1.5e-3 (the default) down to 1 % at step 4
    assert [r["step"] for r in train] == [4] and 1.4e-5 < train[0]["learning_rate"] < 1.6e-5, train


def test_tensorboard_shows_plot_and_speech_at_each_evaluation(workdir):
    """The on_eval hook at step 4 (the only evaluation, with the final parameters) logs the validation utterance
    that the final evaluation plots and synthesizes (--num_samples 1): its audio is that sample's waveform."""
    from tests.test_summaries import decoded_image, read_summaries

    found = read_summaries(workdir / "tensorboard")
    (sample,) = (workdir / "samples").glob("*.wav")
    uid = sample.stem
    assert {step for tag, step in found if tag.endswith(("/plot", "/generated"))} == {4}
    assert (f"validation/{uid}/plot", 4) in found and (f"validation/{uid}/generated", 4) in found
    logged, rate = sf.read(io.BytesIO(found[f"validation/{uid}/generated", 4].audio.encoded_audio_string))
    saved, saved_rate = sf.read(sample)
    assert rate == saved_rate == 22050 and logged.shape == saved.shape
    np.testing.assert_allclose(logged, saved, atol=3 / 32768)  # both 16-bit PCM of the same Griffin-Lim output
    image = decoded_image(found[f"validation/{uid}/plot", 4])
    assert image.shape[0] > 300 and image.shape[1] > 400 and image.std() > 10  # a drawn figure, not a blank
    # TensorBoard itself (installed with the package) finds the same scalars, images and audio.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(workdir / "tensorboard")).Reload().Tags()
    assert {"train/loss", "train/learning_rate", "validation/loss"} <= set(tags["scalars"])
    assert f"validation/{uid}/plot" in tags["images"] and f"validation/{uid}/generated" in tags["audio"]


def test_synthesize_text_and_errors(workdir, tmp_path, capsys):
    out = tmp_path / "hello.wav"
    assert cli(["synthesize", "--workdir", str(workdir), "--text", "Hello there.", "--out", str(out)]) == 0
    audio, rate = sf.read(out)
    assert rate == 22050 and audio.size > 0 and np.all(np.isfinite(audio))
    before = out.read_bytes()
    assert cli(["synthesize", "--workdir", str(workdir), "--text", "Other.", "--out", str(out)]) == 2
    assert out.read_bytes() == before and "refusing to overwrite" in capsys.readouterr().err
    assert cli(["synthesize", "--workdir", str(workdir), "--text", "   ", "--out", str(tmp_path / "e.wav")]) == 2
    err = capsys.readouterr().err
    assert f"reading {workdir}: checkpoint step" in err  # which step it reads, then the one-line error
    err = "".join(line + "\n" for line in err.splitlines() if not line.startswith("reading "))
    assert err.count("\n") == 1 and "empty" in err
    assert cli(["synthesize", "--workdir", str(tmp_path / "nope"), "--text", "Hi.", "--out", str(tmp_path / "x.wav")]) == 2


def test_text_file_keeps_going_past_a_bad_line(workdir, tmp_path, capsys):
    lines = tmp_path / "lines.txt"
    lines.write_text("First line.\nbad 😀 line\nThird line.\n")
    assert cli(["synthesize", "--workdir", str(workdir), "--text-file", str(lines), "--out-dir", str(tmp_path / "o")]) == 1
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["0001.wav", "0003.wav"]
    assert "line 2" in capsys.readouterr().err


def test_a_long_utterance_is_generated_whole_never_cut_at_the_padded_length(workdir):
    """The duration predictor set to say 40 frames per token (more than the bottom rung holds): the mel has every
    predicted frame (the old synthesizer cut it at the 256-frame rung), equal to a direct run at a longer length;
    past the top rung it is refused in one line."""
    import copy

    from mmspeech_jax.errors import TextTooLongError
    from mmspeech_jax.models.variance_adaptor import Controls
    from mmspeech_jax.synthesize import FRAME_LADDER

    tts = Synthesizer.from_workdir(workdir)
    text = "Hello there."
    ids = tts.tokenizer.encode(text)
    out = tts.params["variance_adaptor"]["duration_predictor"]["out"]

    def with_frames_per_token(frames):
        params = copy.deepcopy(tts.params)
        head = params["variance_adaptor"]["duration_predictor"]["out"]
        head["kernel"] = np.zeros_like(out["kernel"])
        head["bias"] = np.full_like(out["bias"], np.log(frames + 1.0))  # durations = round(exp(.) - 1)
        return params

    tts.params = with_frames_per_token(40)
    assert 40 * ids.size > FRAME_LADDER[0]  # more than the bottom rung holds
    mel = tts.mel(text)
    assert mel.shape[0] == 40 * ids.size
    tokens = np.zeros((1, 32), np.int32)
    tokens[0, : ids.size] = ids
    direct, frame_mask, _ = tts._generate(tts.params, tokens, tokens > 0, 1024, Controls())
    assert int(frame_mask.sum()) == mel.shape[0]
    np.testing.assert_allclose(mel, np.asarray(direct[0, : mel.shape[0]]), rtol=1e-5, atol=1e-5)
    tts.params = with_frames_per_token(FRAME_LADDER[-1] // ids.size + 1)
    with pytest.raises(TextTooLongError) as info:
        tts.mel(text)
    assert "split the text" in str(info.value) and "\n" not in str(info.value)


def set_partitions(items):
    """Every partition of `items` into non-empty blocks (brute force; Bell(n) of them)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for partition in set_partitions(rest):
        yield [[first], *partition]
        for i in range(len(partition)):
            yield partition[:i] + [[first, *partition[i]]] + partition[i + 1:]


@pytest.mark.parametrize("seed, max_batch", [(0, 1), (1, 2), (2, 3), (3, 4), (4, 8), (5, 8)])
def test_render_plan_cuts_nothing_and_reuses_compiled_shapes(seed, max_batch):
    """The render plan covers each row once, in a group no larger than its padded batch, at a rung of the ladder
    that holds its longest row; a group of k rows pads to the least power of two >= k (or max_batch). Its costs
    are `plan_groups`' (brute-forced below): with every shape of a plan compiled, planning the same rows again
    gives a plan no costlier in padded frames."""
    from mmspeech_jax.synthesize import FRAME_LADDER, render_plan

    frames = np.random.default_rng(seed).integers(1, 1400, 7).tolist()
    frames[3] = frames[5]  # ties
    sizes = [b for b in range(1, max_batch + 1) if b == max_batch or (b & (b - 1)) == 0]
    plan = render_plan(frames, max_batch)
    assert sorted(k for group, _, _ in plan for k in group) == list(range(7))
    for group, batch, frames_at in plan:
        assert len(group) <= batch <= max_batch and batch in sizes and frames_at in FRAME_LADDER
        assert max(frames[k] for k in group) <= frames_at
    again = render_plan(frames, max_batch, {(batch, frames_at) for _, batch, frames_at in plan})
    padded = lambda p: sum(batch * frames_at for _, batch, frames_at in p)
    assert padded(again) <= padded(plan)


@pytest.mark.parametrize("seed, max_batch, shape_cost, compiled, longest", [
    (0, 4, 0, (), 512), (1, 4, 700, (), 512), (2, 8, 2000, (), 512), (3, 2, 300, ((2, 512),), 512),
    (4, 4, 5000, ((1, 384), (4, 512)), 512), (5, 3, 900, ((3, 256),), 512), (6, 4, 5000, ((4, 384),), 250)])
def test_plan_groups_weighs_new_shapes_against_padding(seed, max_batch, shape_cost, compiled, longest):
    """Against brute force over every partition of 6 rows and every padded length of each group (any rung that
    holds it): a plan costs batch x padded length + the call cost per group, plus `shape_cost` once per distinct
    (batch, padded length) not in `compiled`. The plan must cost as little as the cheapest, and be valid."""
    import itertools

    from mmspeech_jax.synthesize import plan_groups

    rungs = (128, 256, 384, 512)
    rung = lambda n: min(r for r in rungs if r >= n)
    lengths = np.random.default_rng(seed).integers(1, longest + 1, 6).tolist()
    sizes = [b for b in range(1, max_batch + 1) if b == max_batch or (b & (b - 1)) == 0]

    def cost(groups):  # groups: [(rows, batch, padded)]
        shapes = {(b, p) for _, b, p in groups} - set(compiled)
        return sum(b * p + 10 for _, b, p in groups) + shape_cost * len(shapes)

    brute = float("inf")
    for partition in set_partitions(list(range(6))):
        if any(len(block) > max_batch for block in partition):
            continue
        batches = [min(b for b in sizes if b >= len(block)) for block in partition]
        choices = [[r for r in rungs if r >= rung(max(lengths[k] for k in block))] for block in partition]
        for padded in itertools.product(*choices):
            brute = min(brute, cost(list(zip(partition, batches, padded))))
    plan = plan_groups(lengths, max_batch, rung, 10, shape_cost, compiled)
    assert sorted(k for group, _, _ in plan for k in group) == list(range(6))
    for group, batch, padded in plan:
        assert len(group) <= batch <= max_batch and batch in sizes and padded in rungs
        assert max(lengths[k] for k in group) <= padded
    assert cost(plan) == brute, (plan, brute)
    if shape_cost == 0:
        assert all(padded == rung(max(lengths[k] for k in group)) for group, _, padded in plan)


def test_shape_costs_halve_with_the_calls_made():
    """`shape_cost_for`: a fixed setting as it is; by default the full cost on a first call, then `full` / 2**calls
    made, floored (the float64 quotient's floor), never rising, at most a frame rung's step (64) from the 7th call and
    0 from the 14th."""
    import math

    from mmspeech_jax.synthesize import SHAPE_COST_FRAMES, shape_cost_for

    assert shape_cost_for(0, 0) == 0 and shape_cost_for(700, 50) == 700
    assert shape_cost_for(None, 0) == SHAPE_COST_FRAMES and shape_cost_for(None, 0, 2048) == 2048
    costs = [shape_cost_for(None, n) for n in range(100)]
    assert costs == [math.floor(SHAPE_COST_FRAMES / 2.0 ** n) for n in range(100)]
    assert costs == sorted(costs, reverse=True)
    assert costs[5] > 64 >= costs[6] and costs[12] > 0 == costs[13]


def test_the_frame_ladder_pads_little_and_refuses_past_its_top():
    """Rungs: gaps of at most 64 frames up to 512, then at most 12.5 % above the rung below; past the top rung
    `render_plan` refuses in one line instead of cutting."""
    from mmspeech_jax.errors import TextTooLongError
    from mmspeech_jax.synthesize import FRAME_LADDER, render_plan

    assert list(FRAME_LADDER) == sorted(set(FRAME_LADDER)) and FRAME_LADDER[-1] == 8192
    for low, high in zip(FRAME_LADDER, FRAME_LADDER[1:]):
        assert high - low <= 64 if high <= 576 else high <= 1.125 * low, (low, high)
    assert render_plan([], 4) == []
    with pytest.raises(TextTooLongError, match="split the text") as info:
        render_plan([100, FRAME_LADDER[-1] + 1], 4)
    assert "\n" not in str(info.value)


def test_synthesis_in_two_halves_equals_one_pass(workdir):
    """`Synthesizer.synthesize_ids` (prepare at one padded shape, render at another) gives each text the mel,
    durations and pitch of one `generate` pass over that text alone at a long length."""
    from mmspeech_jax.models.variance_adaptor import Controls

    tts = Synthesizer.from_workdir(workdir)
    texts = ["Hello there.", "Yes.", "A much longer sentence, with a clause, to pad the others.", "Good morning."]
    encoded = [tts.tokenizer.encode(t) for t in texts]
    controls = Controls(speed=0.8, pitch_shift=0.5)
    rows = tts.synthesize_ids(encoded, batch_size=3, controls=controls)
    for ids, row in zip(encoded, rows):
        tokens = np.zeros((1, 64), np.int32)
        tokens[0, : ids.size] = ids
        mel, frame_mask, durations = tts._generate(tts.params, tokens, tokens > 0, 2048, controls)
        t = max(int(frame_mask.sum()), 2)
        np.testing.assert_array_equal(row["durations"], np.asarray(durations[0, : ids.size]))
        np.testing.assert_allclose(row["mel"], np.asarray(mel[0, :t]), rtol=1e-4, atol=1e-4)


def test_first_call_plans_give_the_same_speech_from_no_more_shapes(workdir):
    """A synthesizer planning for one call per process (`FIRST_CALL_SHAPE_COSTS`, what the CLI sets) pads rows
    further to share shapes: each text's durations and mel are those of the least-padding plan, within
    float32 noise, and it runs no more prepare or render shapes. The library default (`shape_costs` None: the costs
    halved per call made) plans its first call as the CLI does."""
    from mmspeech_jax.synthesize import FIRST_CALL_SHAPE_COSTS

    words = "the quick brown fox jumps over a lazy dog while seven tired owls watch from an old oak".split()
    texts = [" ".join(words[: 2 + (3 * k) % len(words)]).capitalize() + "." for k in range(14)]
    default, first_call = Synthesizer.from_workdir(workdir), Synthesizer.from_workdir(workdir)
    default.shape_costs, first_call.shape_costs = (0, 0), FIRST_CALL_SHAPE_COSTS
    encoded = [default.tokenizer.encode(t) for t in texts]
    rows, rows_first = default.synthesize_ids(encoded, batch_size=4), first_call.synthesize_ids(encoded, batch_size=4)
    library = Synthesizer.from_workdir(workdir)
    assert library.shape_costs is None
    library.synthesize_ids(encoded, batch_size=4)
    assert library._compiled == first_call._compiled and library.calls_made == 1
    for row, row_first in zip(rows, rows_first):
        np.testing.assert_array_equal(row_first["durations"], row["durations"])
        np.testing.assert_allclose(row_first["mel"], row["mel"], rtol=1e-4, atol=1e-4)
    for half in ("prepare", "render"):
        assert len(first_call._compiled[half]) <= len(default._compiled[half]), half
    assert len(first_call._compiled["prepare"]) < len(default._compiled["prepare"])


def test_bad_arguments_fail_in_one_line_before_the_model_loads(tmp_path, capsys):
    """Each is reported as itself, not as the missing workdir (which would load after them), and writes nothing."""
    missing = str(tmp_path / "no_workdir")
    existing = tmp_path / "taken.wav"
    existing.write_bytes(b"user data")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Caf\xe9 au lait.\n".encode("latin-1"))
    cases = [
        (["--text", "Hi.", "--out", str(tmp_path / "a.wav"), "--speed", "0"], "speed"),
        (["--text", "Hi.", "--out", str(tmp_path / "a.wav"), "--speed", "nan"], "speed"),
        (["--text", "Hi.", "--out", str(tmp_path / "a.mp3")], "unsupported output format"),
        (["--text", "Hi.", "--out", str(existing)], "refusing to overwrite"),
        (["--text-file", str(tmp_path / "none.txt"), "--out-dir", str(tmp_path / "o")], "not found"),
        (["--text-file", str(latin1), "--out-dir", str(tmp_path / "o")], "not UTF-8"),
        (["--text-file", str(latin1)], "--out-dir"),
    ]
    for extra, expected in cases:
        assert cli(["synthesize", "--workdir", missing, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "no_workdir" not in err, (extra, err)
    assert existing.read_bytes() == b"user data" and not (tmp_path / "o").exists() and not (tmp_path / "a.wav").exists()
    assert cli(["evaluate-tts", "--tts", missing, "--asr", missing, "--text-file", str(latin1)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_export_loads_in_a_new_process(workdir, tmp_path):
    out = tmp_path / "exported"
    assert cli(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
    assert cli(["export", "--workdir", str(workdir), "--out", str(out)]) == 2  # never overwrites
    tts = Synthesizer.from_workdir(workdir)
    ids = tts.tokenizer.encode("Hello there.")
    tokens = np.zeros((1, 32), np.int32)
    tokens[0, : ids.size] = ids
    expected, _, _ = tts._generate(tts.params, tokens, tokens > 0, 256, __import__(
        "mmspeech_jax.models.variance_adaptor", fromlist=["Controls"]).Controls())
    np.save(tmp_path / "tokens.npy", tokens)
    program = (
        "import numpy as np, jax\n"
        "from mmspeech_jax.export import load_exported\n"
        f"model, params, table, mel = load_exported({str(out)!r})\n"
        f"tokens = np.load({str(tmp_path / 'tokens.npy')!r})\n"
        "out, mask, dur = model.apply({'params': params}, tokens, tokens > 0, 256, method=model.generate)\n"
        f"np.save({str(tmp_path / 'mel.npy')!r}, np.asarray(out))\n"
        "print(len(table), mel.n_mels)\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-1500:]
    np.testing.assert_allclose(np.load(tmp_path / "mel.npy"), np.asarray(expected), atol=1e-5)
    from safetensors.numpy import load_file

    names = set(load_file(str(out / "model.safetensors")))
    assert "encoder/block_0/attention/qkv/kernel" in names and "postnet/conv_0/kernel" in names
    # every exported file is readable by others alike (safetensors alone used to write 0600)
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {"0o644"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_a_tts_export_stands_alone(workdir, tmp_path, capsys):
    """Synthesizer.from_export (and the CLI given the export as --workdir) synthesizes what the workdir does, from
    the export's files alone: the tokenizer kind travels in its config.json."""
    import json

    out = tmp_path / "exported"
    assert cli(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
    inference = json.loads((out / "config.json").read_text())["inference"]
    workdir_config = json.loads((workdir / "config.json").read_text())
    assert inference["tokenizer"] == workdir_config["features"]["tokenizer"] and inference["step"] == 4
    assert inference["stats"] == workdir_config["stats"]
    expected, rate = Synthesizer.from_workdir(workdir).synthesize("Hello there.")
    exported = Synthesizer.from_export(out)
    audio, exported_rate = exported.synthesize("Hello there.")
    assert exported_rate == rate and exported.checkpoint_step == 4
    np.testing.assert_allclose(audio, expected, atol=1e-5)
    capsys.readouterr()
    assert cli(["synthesize", "--workdir", str(out), "--text", "Hello there.", "--out", str(tmp_path / "a.wav")]) == 0
    assert f"reading {out}: checkpoint step 4" in capsys.readouterr().err
    saved, _ = sf.read(tmp_path / "a.wav")
    assert saved.shape == expected.shape


def test_an_export_without_its_inference_fields_is_one_line(workdir, tmp_path):
    """An export written before exports carried their tokenizer and statistics: one line saying to re-export."""
    import json

    from mmspeech_jax.errors import ConfigError, NotAWorkdirError

    out = tmp_path / "old"
    assert cli(["export", "--workdir", str(workdir), "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    del config["inference"]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="export it again") as error:
        Synthesizer.from_export(out)
    assert "\n" not in str(error.value)
    (out / "symbols.json").unlink()
    with pytest.raises(NotAWorkdirError, match="missing symbols.json"):
        Synthesizer.from_export(out)


def test_batch_synthesis_matches_one_at_a_time(workdir):
    """synthesize_batch: each text's mel equals `mel(text)` alone (padding to the batch's longest changes nothing
    valid), its durations sum to its frames, and pitch/energy come per token."""
    tts = Synthesizer.from_workdir(workdir)
    texts = ["Hello there.", "A much longer sentence, with a clause, to pad the others.", "Yes."]
    batch = tts.synthesize_batch(texts, batch_size=2, griffin_lim_iters=4)
    assert len(batch) == 3
    for text, row in zip(texts, batch):
        np.testing.assert_allclose(row["mel"], tts.mel(text), atol=1e-4)
        n = len(tts.tokenizer.encode(text))
        assert len(row["symbols"]) == n and row["durations"].shape == row["pitch"].shape == row["energy"].shape == (n,)
        assert int(row["durations"].sum()) == row["mel"].shape[0] or row["mel"].shape[0] == 2  # 2: the floor
        assert row["audio"].dtype == np.float32 and row["sample_rate"] == 22050
    with pytest.raises(Exception, match="batch_size must be >= 1"):
        tts.synthesize_batch(texts, batch_size=0)


def test_every_cli_option_has_help_text():
    """Issue #30: `mmspeech synthesize --help` described almost no option."""
    import argparse

    from mmspeech_jax.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"synthesize", "vocode", "export", "transcribe", "evaluate-tts"}
    bare = [f"{name} {action.option_strings or action.dest}" for name, sub in commands.items()
            for action in sub._actions if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not bare, bare


HAND_WRITTEN_LM = r'''
import json, sys
import numpy as np
from safetensors.numpy import load_file

out, ids = sys.argv[1], np.array(json.loads(sys.argv[2]))
p = {k: v.astype(np.float64) for k, v in load_file(out + "/model.safetensors").items()}
config = json.load(open(out + "/config.json"))["model"]
heads = config["heads"]

def norm(x, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * p[name + "/scale"] + p[name + "/bias"]

def dense(x, name):
    return x @ p[name + "/kernel"] + p[name + "/bias"]

gelu = lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
n, d = len(ids), p["embed/embedding"].shape[1]
x = p["embed/embedding"][ids] + p["positions"][:n]
for i in range(config["layers"]):
    b = f"block_{i}"
    qkv = dense(norm(x, b + "/attention_norm"), b + "/qkv").reshape(n, 3, heads, d // heads)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d // heads)
    scores = np.where(np.tril(np.ones((n, n), bool))[None], scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    x = x + dense(np.einsum("hqk,khd->qhd", weights, v).reshape(n, d), b + "/out")
    x = x + dense(gelu(dense(norm(x, b + "/mlp_norm"), b + "/mlp_in")), b + "/mlp_out")
np.save(sys.argv[3], dense(norm(x, "final_norm"), "logits"))
print("mmspeech_jax" in sys.modules)
'''


def test_a_hand_written_forward_pass_reads_the_export_alone(tiny_lm_workdir, tmp_path):
    """docs/parameters.md's text-LM layout, followed by hand in NumPy float64 in a process that imports nothing of
    this package, gives the model's logits (float32) from the exported safetensors and config.json alone."""
    import json

    from mmspeech_jax.export import load_exported

    out = tmp_path / "lm"
    assert cli(["export", "--workdir", str(tiny_lm_workdir), "--out", str(out)]) == 0
    ids = [0, 5, 9, 2, 17, 3, 3, 11]
    result = subprocess.run([sys.executable, "-c", HAND_WRITTEN_LM, str(out), json.dumps(ids),
                             str(tmp_path / "logits.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "False"  # nothing of mmspeech_jax was imported
    model, params, _, _ = load_exported(out)
    tokens = np.array([ids], np.int32)
    expected = np.asarray(model.apply({"params": params}, tokens, tokens >= 0, train=False))[0]
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-4, atol=1e-4)


def test_the_cli_keeps_compiled_programs_in_the_cache_folder(monkeypatch, tmp_path):
    """A second `mmspeech` call loads its compiled programs (JAX's persistent cache) unless the user chose."""
    from mmspeech_jax.cli import compilation_cache_dir

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.delenv("MMSPEECH_NO_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("MMSPEECH_CACHE_DIR", str(tmp_path))
    assert compilation_cache_dir() == tmp_path / "xla"
    monkeypatch.setenv("MMSPEECH_NO_COMPILATION_CACHE", "1")
    assert compilation_cache_dir() is None
    monkeypatch.delenv("MMSPEECH_NO_COMPILATION_CACHE")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "own"))
    assert compilation_cache_dir() is None  # JAX uses the user's own


def test_vocoded_speech_keeps_the_level_its_mel_encodes(workdir):
    """A harmonic tone at amplitude 0.1 and at 0.3, analysed into log-mels and vocoded by the synthesizer
    (Griffin-Lim): each comes back near its own level and the louder one ~3x the quieter (the old output was
    peak-normalized to 0.9, so both came back equal and a recognizer trained on the corpus heard shifted log-mels);
    a mel louder than full scale comes back scaled to the 0.99 ceiling."""
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy

    tts = Synthesizer.from_workdir(workdir)
    rate = tts.mel_config.sample_rate
    t = np.arange(rate // 2) / rate
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220.0, 440.0, 660.0), 1)).astype(np.float32)
    tone /= np.abs(tone).max()
    rms = lambda x: float(np.sqrt(np.mean(np.square(x[rate // 10: -rate // 10]))))  # away from the edges
    quiet, loud = (tts.vocode(padded_log_mel_and_energy(a * tone, tts.mel_config)[0])[0] for a in (0.1, 0.3))
    assert rms(loud) / rms(quiet) == pytest.approx(3.0, rel=0.05)
    assert rms(loud) == pytest.approx(rms(0.3 * tone), rel=0.2)
    too_loud = tts.vocode(padded_log_mel_and_energy(0.3 * tone, tts.mel_config)[0] + np.log(100.0))[0]
    assert np.abs(too_loud).max() == pytest.approx(0.99, rel=1e-5)
