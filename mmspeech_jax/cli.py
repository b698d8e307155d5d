"""The `mmspeech` command: synthesize and export (more commands come with the ASR).

    mmspeech synthesize --workdir W --text "Hello." --out hello.wav
    mmspeech synthesize --workdir W --text-file lines.txt --out-dir wavs/
    mmspeech export --workdir W --out exported/
Errors (bad text, missing workdir, an output that exists) print one line and exit with status 2; in --text-file
mode a bad line is reported and the other lines are still synthesized.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmspeech_jax.errors import MMSpeechError


def _synthesize(args) -> int:
    from mmspeech_jax.audio.io import save_audio
    from mmspeech_jax.models.variance_adaptor import Controls
    from mmspeech_jax.synthesize import Synthesizer

    if (args.text is None) == (args.text_file is None):
        raise MMSpeechError("give exactly one of --text and --text-file")
    tts = Synthesizer.from_workdir(args.workdir)
    controls = Controls(speed=args.speed, pitch_shift=args.pitch_shift)
    if args.text is not None:
        if not args.out:
            raise MMSpeechError("--text needs --out FILE.wav")
        audio, rate = tts.synthesize(args.text, controls)
        print(save_audio(args.out, audio, rate, overwrite=args.overwrite))
        return 0
    if not args.out_dir:
        raise MMSpeechError("--text-file needs --out-dir DIR")
    failures = 0
    lines = [line.strip() for line in Path(args.text_file).read_text().splitlines()]
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            audio, rate = tts.synthesize(line, controls)
            print(save_audio(Path(args.out_dir) / f"{number:04d}.wav", audio, rate, overwrite=args.overwrite))
        except MMSpeechError as exc:
            failures += 1
            print(f"mmspeech: line {number}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _export(args) -> int:
    from mmspeech_jax.export import export_parameters
    from mmspeech_jax.synthesize import read_workdir_config, restore_params

    workdir = Path(args.workdir)
    config = read_workdir_config(workdir)
    params, step = restore_params(workdir)
    out = export_parameters(params, config["model"], json.loads((workdir / "symbols.json").read_text()),
                            config["features"]["mel"], args.out)
    print(f"exported step {step} to {out}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mmspeech", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synthesize", help="text to wav with a trained TTS workdir")
    s.add_argument("--workdir", required=True)
    s.add_argument("--text")
    s.add_argument("--text-file")
    s.add_argument("--out")
    s.add_argument("--out-dir")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--pitch-shift", type=float, default=0.0)
    s.add_argument("--overwrite", action="store_true")
    e = sub.add_parser("export", help="parameters as safetensors + config.json + symbols.json")
    e.add_argument("--workdir", required=True)
    e.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        return {"synthesize": _synthesize, "export": _export}[args.command](args)
    except MMSpeechError as exc:
        print(f"mmspeech: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
