"""The `mmspeech` command: synthesize, vocode, export, transcribe, evaluate-tts.

    mmspeech synthesize --workdir W --text "Hello." --out hello.wav
    mmspeech synthesize --workdir W --text-file lines.txt --out-dir wavs/
    mmspeech synthesize --workdir W --text-file lines.txt --out-dir wavs/ --vocoder VOCODER_WORKDIR
    mmspeech vocode --vocoder VOCODER_WORKDIR mel.npy speech.wav --out-dir wavs/
    mmspeech synthesize --workdir W_multi --text "Hello." --out a.wav --speaker 2   (or --reference voice.wav)
    mmspeech export --workdir W --out exported/
    mmspeech export --workdir W --out serialized/ --stablehlo      (jax.export artifacts: no model code needed)
    mmspeech transcribe --workdir W a.wav b.flac ... [--out results.jsonl] [--beam-width 8] [--lm LM_WORKDIR]
    mmspeech evaluate-tts --tts W1 --asr W2 --text-file lines.txt [--out report.json]

Errors (bad text, a bad --speed, a missing or non-UTF-8 --text-file, missing workdir, an output that exists) print
one line and exit with status 2; the arguments are checked before the model loads; in --text-file
mode a bad line is reported and the other lines are still synthesized; in `transcribe` an unreadable file is
reported on one line and the other files are still transcribed (exit status 1 when any failed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmspeech_jax.errors import MMSpeechError
from mmspeech_jax.long_form import CHUNK_SECONDS, CONTEXT_SECONDS, MAX_AUDIO_SECONDS, PAUSE_SECONDS
from mmspeech_jax.output_paths import check_output_dir, check_output_file
from mmspeech_jax.workdir import atomic_write_text, strict_json


COMPUTE_DTYPE_HELP = ("the model's arithmetic: float32 (default) or bfloat16 (parameters stay float32; for GPUs and "
                      "TPUs: on the CPU it is slower, see benchmarks/RESULTS.md)")


def _text_lines(path: str) -> list[str]:
    """The stripped lines of a --text-file (blank ones kept, so line numbers match the file), or a one-line error."""
    file = Path(path)
    if not file.is_file():
        raise MMSpeechError(f"text file {path} not found")
    try:
        return [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise MMSpeechError(f"text file {path} is not UTF-8 text (byte {exc.start})") from None


def _check_report_path(args) -> None:
    """--out of `transcribe` / `evaluate-tts`, before any model loads: a file in an existing writable folder, never
    an existing file unless --overwrite (`output_paths.check_output_file`)."""
    if args.out:
        check_output_file(args.out, overwrite=args.overwrite, what="--out")


def _reading(model, workdir):
    """Says on stderr which checkpoint step of `workdir` the loaded `model` holds (a damaged newer step is skipped
    by `restore_params` with its own line), then returns the model."""
    print(f"reading {workdir}: checkpoint step {model.checkpoint_step}", file=sys.stderr)
    return model


def _few_shapes(model):
    """A `Synthesizer`, `Vocoder` or `Transcriber` set to plan its batches for one job per process: padding weighed
    against compiling a new shape at the fixed first-call costs (`synthesize.FIRST_CALL_SHAPE_COSTS`,
    `SHAPE_COST_FRAMES`), as every `mmspeech` command is one job even where it makes several calls (`vocode` file by
    file): the library default would halve the costs with each of those calls (`synthesize.shape_cost_for`).
    Returns it."""
    from mmspeech_jax.synthesize import FIRST_CALL_SHAPE_COSTS, SHAPE_COST_FRAMES, Synthesizer

    if isinstance(model, Synthesizer):
        model.shape_costs = FIRST_CALL_SHAPE_COSTS
    else:
        model.shape_cost = SHAPE_COST_FRAMES
    return model


def _voiced(tts, args):
    """`tts` bound to --speaker / --reference (validated: one-line errors)."""
    from mmspeech_jax.synthesize import VoicedSynthesizer

    reference = None if args.reference is None else tts.reference_mel(args.reference)
    return VoicedSynthesizer(tts, args.speaker, reference)


def _synthesize(args) -> int:
    from mmspeech_jax.audio.io import check_audio_output, save_audio
    from mmspeech_jax.models.variance_adaptor import Controls
    from mmspeech_jax.synthesize import Synthesizer

    if (args.text is None) == (args.text_file is None):
        raise MMSpeechError("give exactly one of --text and --text-file")
    if args.text is not None:
        if not args.out:
            raise MMSpeechError("--text needs --out FILE.wav")
        check_audio_output(args.out, overwrite=args.overwrite)
    if args.text_file is not None and not args.out_dir:
        raise MMSpeechError("--text-file needs --out-dir DIR")
    if args.text_file is not None:
        check_output_dir(args.out_dir, what="--out-dir")
    # Everything the user typed is checked before the model loads.
    controls = Controls(speed=args.speed, pitch_shift=args.pitch_shift)
    lines = None if args.text_file is None else _text_lines(args.text_file)
    if args.batch_size < 1:
        raise MMSpeechError(f"--batch-size must be >= 1, got {args.batch_size}")
    synthesizer = _reading(Synthesizer.from_workdir(args.workdir), args.workdir)
    if args.compute_dtype != "float32":
        synthesizer = synthesizer.with_compute_dtype(args.compute_dtype)
    synthesizer = _few_shapes(synthesizer)
    if args.vocoder:
        from mmspeech_jax.vocode import Vocoder

        synthesizer.use_vocoder(_few_shapes(_reading(Vocoder.from_workdir(args.vocoder), args.vocoder)))
    tts = _voiced(synthesizer, args)  # a bad voice fails here
    if lines is None:
        audio, rate = tts.synthesize(args.text, controls)
        print(save_audio(args.out, audio, rate, overwrite=args.overwrite))
        return 0
    failures, good = 0, []  # good: (line number, text) of the lines that tokenize
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            synthesizer.tokenizer.encode(line)
            good.append((number, line))
        except MMSpeechError as exc:
            failures += 1
            print(f"mmspeech: line {number}: {exc}", file=sys.stderr)
    results = tts.synthesize_batch([line for _, line in good], args.batch_size, controls) if good else []
    for (number, _), result in zip(good, results):
        print(save_audio(Path(args.out_dir) / f"{number:04d}.wav", result["audio"], result["sample_rate"],
                         overwrite=args.overwrite))
    return 1 if failures else 0


def _export(args) -> int:
    from mmspeech_jax.export import PARAMETER_FILES, check_new_outputs, export_parameters, inference_fields
    from mmspeech_jax.workdir import read_workdir_config, restore_params

    workdir = Path(args.workdir)
    if args.stablehlo:
        from mmspeech_jax.serialized import export_workdir

        out = export_workdir(workdir, args.out, args.max_tokens, args.max_frames, args.platforms, args.vocoder)
        print(f"serialized {out}")
        return 0
    config = read_workdir_config(workdir)
    check_new_outputs(args.out, PARAMETER_FILES)  # before the checkpoint loads
    params, step = restore_params(workdir)
    if config.get("task") == "vocoder":  # the generator alone: what inference runs (no symbols)
        out = export_parameters(params["generator"], config["model"], {}, config["model"]["mel"], args.out,
                                task="vocoder", inference=inference_fields(config, step))
    else:
        out = export_parameters(params, config["model"], json.loads((workdir / "symbols.json").read_text()),
                                config.get("features", {}).get("mel"), args.out, task=config.get("task", "tts"),
                                inference=inference_fields(config, step))
    print(f"exported step {step} to {out}")
    return 0


def _vocode(args) -> int:
    import numpy as np

    from mmspeech_jax.audio.io import load_audio, clip_protected, save_audio
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
    from mmspeech_jax.vocode import Vocoder

    out_dir = check_output_dir(args.out_dir, what="--out-dir")
    vocoder = _few_shapes(_reading(Vocoder.from_workdir(args.vocoder), args.vocoder))
    failures = 0
    for path in args.inputs:
        try:
            if path.endswith(".npy"):
                try:
                    mel = np.load(path, allow_pickle=False)
                except (OSError, ValueError) as exc:
                    raise MMSpeechError(f"{path}: not a readable .npy array ({exc})") from None
            else:
                audio, _ = load_audio(path, vocoder.sample_rate)
                mel = padded_log_mel_and_energy(audio, vocoder.config.mel)[0]
            wave = vocoder(mel)
            print(save_audio(Path(out_dir) / f"{Path(path).stem}.wav", clip_protected(wave), vocoder.sample_rate,
                             overwrite=args.overwrite))
        except MMSpeechError as exc:
            failures += 1
            print(f"mmspeech: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _transcribe(args) -> int:
    from mmspeech_jax.transcribe import Transcriber

    if args.beam_width < 1:
        raise MMSpeechError(f"--beam-width must be >= 1 (1: greedy), got {args.beam_width}")
    if args.batch_size < 1:
        raise MMSpeechError(f"--batch-size must be >= 1, got {args.batch_size}")
    _check_report_path(args)
    if args.lm and args.beam_width < 2:
        raise MMSpeechError("--lm fuses the language model into the beam search: give --beam-width 2 or more")
    asr = Transcriber.from_workdir(args.workdir, "beam" if args.beam_width > 1 else "greedy", args.beam_width,
                                   lm_workdir=args.lm, lm_weight=args.lm_weight, length_bonus=args.length_bonus)
    _reading(asr, args.workdir)
    if args.compute_dtype != "float32":
        asr = asr.with_compute_dtype(args.compute_dtype)
    asr.chunk_seconds, asr.context_seconds = args.chunk_seconds, args.context_seconds
    asr.pause_seconds = args.pause_seconds
    asr.silence_pauses = {"auto": None, "on": True, "off": False}[args.silence_pauses]
    asr.windows(1)  # a bad --chunk-seconds / --context-seconds / --pause-seconds: one line before any file is read
    if asr.lm is not None:
        print(f"language model {args.lm}: lm_weight {asr.lm_weight}, length_bonus {asr.length_bonus}",
              file=sys.stderr)
    results, failures, ready = [], 0, []  # ready: (row index, log-mel) of the files that read
    for path in args.audio:
        try:
            ready.append((len(results), asr.mel(path)))
            results.append({"path": path})
        except MMSpeechError as exc:
            failures += 1
            results.append({"path": path, "error": str(exc)})
            print(f"mmspeech: {exc}", file=sys.stderr)
    asr = _few_shapes(asr)
    window = 16 * args.batch_size  # printed window by window, in input order
    for start in range(0, len(ready), window):
        batch = ready[start:start + window]
        for (row, _), decoded in zip(batch, asr.transcribe_many([mel for _, mel in batch], args.batch_size,
                                                                args.timestamps)):
            results[row].update(decoded)
            print(f"{results[row]['path']}\t{decoded['text']}")
    if args.out:
        atomic_write_text(args.out, "".join(strict_json(r) + "\n" for r in results))
    return 1 if failures else 0


def _ground_truth_mels(tts_config: dict) -> dict:
    """Text -> log-mel of the real recording, from the corpus the TTS trained on (embedded corpus only)."""
    from mmspeech_jax.data import CorpusConfig, embedded_feature_cache

    data = tts_config.get("data") or {}  # the run's DataConfig (config.json before the config trees: "args")
    if not data and "args" in tts_config:
        args = tts_config["args"]
        data = {"source": args.get("data"), "corpus_size": args.get("corpus_size", 2000)}
    if data.get("source") == "ljspeech" or tts_config.get("task") == "hyperspeech":
        return {}  # LJSpeech: not the embedded corpus; multi-voice: which voice's recording is ambiguous
    cache = embedded_feature_cache(CorpusConfig(num_utterances=data.get("corpus_size", 2000)), progress=False)
    return {cache.texts[i]: cache[int(i)]["mel"] for i in cache.indices("test")}


def _evaluate_tts(args) -> int:
    from mmspeech_jax.evaluate.intelligibility import evaluate_tts
    from mmspeech_jax.synthesize import Synthesizer
    from mmspeech_jax.transcribe import Transcriber
    from mmspeech_jax.workdir import read_workdir_config

    _check_report_path(args)
    texts = [line for line in _text_lines(args.text_file) if line]
    synthesizer = _few_shapes(_reading(Synthesizer.from_workdir(args.tts), args.tts))
    if args.vocoder:
        from mmspeech_jax.vocode import Vocoder

        synthesizer.use_vocoder(_few_shapes(_reading(Vocoder.from_workdir(args.vocoder), args.vocoder)))
    tts = _voiced(synthesizer, args)
    asr = _reading(Transcriber.from_workdir(args.asr), args.asr)
    ground_truth = {} if args.no_ground_truth else _ground_truth_mels(read_workdir_config(args.tts))
    report = evaluate_tts(tts, asr, texts, ground_truth)
    for line in report["lines"]:
        if "error" in line:
            print(f"mmspeech: {line['text']!r}: {line['error']}", file=sys.stderr)
    summary = {k: report[k] for k in ("synthesized", "ground_truth", "ground_truth_vocoded")}
    print(strict_json(summary, indent=1))
    if args.out:
        atomic_write_text(args.out, strict_json(report, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `mmspeech` argument parser: one sub-command each for synthesize, export, transcribe and evaluate-tts;
    every option has its help text (`tests/test_cli.py` checks)."""
    parser = argparse.ArgumentParser(prog="mmspeech", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synthesize", help="text to wav with a trained TTS workdir")
    s.add_argument("--workdir", required=True,
                   help="a TTS, HyperSpeech or joint speech–text training workdir, or its export")
    s.add_argument("--text", help="one sentence to speak (with --out)")
    s.add_argument("--text-file", help="a UTF-8 file, one sentence per line (with --out-dir: 0001.wav, 0002.wav, ...)")
    s.add_argument("--out", help="the wav file to write for --text (never overwritten without --overwrite)")
    s.add_argument("--out-dir", help="the folder for --text-file's wavs")
    s.add_argument("--speed", type=float, default=1.0, help="speaking rate: > 1 faster, < 1 slower (default 1)")
    s.add_argument("--pitch-shift", type=float, default=0.0,
                   help="added to the predicted pitch, in standard deviations of the corpus's log-F0 (default 0)")
    s.add_argument("--speaker", type=int, help="multi-speaker workdirs: a training voice's id")
    s.add_argument("--reference", help="multi-speaker workdirs: an audio file whose voice to speak in (0.5-30 s)")
    s.add_argument("--vocoder", default=None, metavar="VOCODER_WORKDIR",
                   help="a neural vocoder (python -m experiments.vocoder, or its export) instead of Griffin-Lim")
    s.add_argument("--batch-size", type=int, default=8,
                   help="--text-file: sentences synthesized (and vocoded) together, similar lengths batched (default 8)")
    s.add_argument("--compute-dtype", default="float32", choices=("float32", "bfloat16"),
                   help=COMPUTE_DTYPE_HELP)
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    c = sub.add_parser("vocode", help="a log-mel (.npy, (T, M)) or an audio file's mel to wav with a neural vocoder")
    c.add_argument("--vocoder", required=True, help="a vocoder training workdir (python -m experiments.vocoder) or "
                                                     "its export")
    c.add_argument("inputs", nargs="+", help=".npy log-mels (T, M) as the TTS makes them, or audio files (copy "
                                             "synthesis: their own mel is vocoded)")
    c.add_argument("--out-dir", required=True, help="the folder for the wavs (named after the inputs)")
    c.add_argument("--overwrite", action="store_true", help="replace existing output files")
    e = sub.add_parser("export", help="parameters as safetensors + config.json + symbols.json")
    e.add_argument("--workdir", required=True, help="the training workdir to export (its newest step that restores)")
    e.add_argument("--out", required=True, help="the export folder (refused when it already holds an export's files)")
    e.add_argument("--stablehlo", action="store_true",
                   help="write jax.export artifacts that run without the model code (see mmspeech_jax/serialized.py)")
    e.add_argument("--max-tokens", type=int, default=256, help="--stablehlo: padded token length")
    e.add_argument("--max-frames", type=int, default=1024,
                   help="--stablehlo: padded frame length (text_to_mel's `truncated` output flags longer speech)")
    e.add_argument("--platforms", default="cpu", metavar="LIST",
                   help="--stablehlo: comma-separated backends to lower for in one artifact: cpu, cuda, rocm, tpu "
                        "(no such device needed to export)")
    e.add_argument("--vocoder", default=None, metavar="VOCODER_WORKDIR",
                   help="--stablehlo of a TTS workdir: also text_to_waveform.jax, FastSpeech2 and this neural vocoder "
                        "in one artifact")
    t = sub.add_parser("transcribe", help="speech to text with a trained ASR workdir")
    t.add_argument("--workdir", required=True, help="an ASR or joint speech–text training workdir, or its export")
    t.add_argument("audio", nargs="+", help="audio files (wav, flac, ...; any rate, mono or stereo)")
    t.add_argument("--out", help="also write one JSON object per file to this JSONL file")
    t.add_argument("--beam-width", type=int, default=1, help="1: greedy; >1: CTC prefix beam search")
    t.add_argument("--lm", default=None, metavar="LM_WORKDIR",
                   help="shallow fusion of a text LM (python -m experiments.text_lm) in the beam search")
    t.add_argument("--lm-weight", type=float, default=None,
                   help="default: what the ASR workdir's report.json chose on validation, else 0.5")
    t.add_argument("--length-bonus", type=float, default=None,
                   help="per-symbol bonus with --lm; default: the ASR report's, else 1.0")
    t.add_argument("--batch-size", type=int, default=16, help="files run through the model at once (default 16)")
    t.add_argument("--timestamps", action="store_true",
                   help="also give each character's and word's start and end in seconds (in --out's JSONL rows)")
    t.add_argument("--compute-dtype", default="float32", choices=("float32", "bfloat16"),
                   help=COMPUTE_DTYPE_HELP)
    t.add_argument("--chunk-seconds", type=float, default=CHUNK_SECONDS,
                   help=f"recordings longer than this (up to {MAX_AUDIO_SECONDS / 3600:g} h) run in windows of at "
                        f"most this length, stitched before decoding (default {CHUNK_SECONDS:g}, at most 60)")
    t.add_argument("--context-seconds", type=float, default=CONTEXT_SECONDS,
                   help=f"where a window is cut in speech, context at each side of its kept middle (default "
                        f"{CONTEXT_SECONDS:g})")
    t.add_argument("--pause-seconds", type=float, default=PAUSE_SECONDS,
                   help=f"long recordings' windows are cut in pauses at least this long, with no context, and "
                        f"the pauses are silenced as --silence-pauses says (default {PAUSE_SECONDS:g}; 0: neither, "
                        f"overlapping windows)")
    t.add_argument("--silence-pauses", choices=("auto", "on", "off"), default="auto",
                   help="set those pauses to silence before recognition: auto (default) does for a recognizer "
                        "trained without noise augmentation, which writes letters into background noise")
    t.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    v = sub.add_parser("evaluate-tts", help="synthesize each line with --tts, transcribe it with --asr, CER/WER")
    v.add_argument("--tts", required=True, help="TTS workdir")
    v.add_argument("--asr", required=True, help="ASR workdir")
    v.add_argument("--text-file", required=True, help="one sentence per line")
    v.add_argument("--out", help="full report (per line) as JSON")
    v.add_argument("--no-ground-truth", action="store_true",
                   help="skip transcribing the corpus recordings of sentences that have one")
    v.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    v.add_argument("--speaker", type=int, help="multi-speaker TTS workdirs: a training voice's id")
    v.add_argument("--reference", help="multi-speaker TTS workdirs: audio of the voice to speak in")
    v.add_argument("--vocoder", default=None, metavar="VOCODER_WORKDIR",
                   help="vocode the synthesized and the ground-truth mels with this neural vocoder, not Griffin-Lim")
    return parser


def compilation_cache_dir() -> Path | None:
    """Where the CLI keeps JAX's persistent compilation cache: None when JAX_COMPILATION_CACHE_DIR is set (JAX uses
    that) or MMSPEECH_NO_COMPILATION_CACHE is set (no cache), else `$MMSPEECH_CACHE_DIR/xla` (default
    ~/.cache/mmspeech_jax/xla)."""
    import os

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.environ.get("MMSPEECH_NO_COMPILATION_CACHE"):
        return None
    return Path(os.environ.get("MMSPEECH_CACHE_DIR", Path.home() / ".cache" / "mmspeech_jax")) / "xla"


def _use_compilation_cache() -> None:
    """A second `mmspeech` call with the same models loads their compiled programs instead of compiling them again
    (the first call of a session spends most of its time compiling: benchmarks/RESULTS.md)."""
    directory = compilation_cache_dir()
    if directory is not None:
        from mmspeech_jax.train.trainer import use_compilation_cache

        use_compilation_cache(directory)


def main(argv=None) -> int:
    """The `mmspeech` command line (argv: list of str, default sys.argv[1:]) -> exit status: 0 done, 1 some inputs
    failed (each reported in one line), 2 a user error (one line on stderr, no traceback). Turns on JAX's persistent
    compilation cache (`compilation_cache_dir`) first. It leaves glibc's malloc as it is (unlike the training entry
    points, it does not call `host_memory.keep_freed_memory()`): every command here is inference, whose first call is
    mostly compilation, and XLA compiled ~1.5x slower with malloc's one heap (benchmarks/RESULTS.md, 2026-12-06)."""
    args = build_parser().parse_args(argv)
    _use_compilation_cache()
    try:
        return {"synthesize": _synthesize, "vocode": _vocode, "export": _export, "transcribe": _transcribe,
                "evaluate-tts": _evaluate_tts}[args.command](args)
    except MMSpeechError as exc:
        print(f"mmspeech: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
