"""Where an iSTFT vocoder loses to Griffin-Lim: copy synthesis with parts of its spectrum replaced by the truth.

    python -m benchmarks.vocoder_phase --vocoder workdir/vocoder [--utterances 20] [--cutoffs 500,1000,2000,4000]
                                       [--out results.json] [--record]

The vocoder's head predicts each frame's STFT magnitude and phase (`models/istft_vocoder.py`; "phase" below is the
phase its waveform uses: the head's, or the spectral peaks' below `peak_phase_hz`). For the first
`--utterances` validation utterances of the embedded corpus (the experiment's copy-synthesis set), each row inverts
one spectrum with the same inverse STFT and scores it against the recording (PESQ-WB, STOI:
`evaluate/vocoder_quality.py`):

  * vocoder: the head's magnitude and phase (what the vocoder outputs);
  * vocoder magnitude, true phase: the recording's own STFT phase (the magnitude's ceiling);
  * true phase below F Hz: the recording's phase in the bins under F, the head's above (where the phase error costs);
  * true magnitude, vocoder phase: the phase's ceiling;
  * Griffin-Lim on the vocoder's magnitude (60 fast iterations from random phase) and on the mel's pseudo-inverse
    (the experiment's Griffin-Lim baseline);
  * a phase computed from a magnitude alone: `audio/phase_gradient.phase_gradient_phase` (the phase "gradient" of
    the `cpu` preset) of the vocoder's and of the recording's magnitude, and `audio/peak_phase.peak_locked_phase` of
    the recording's (how good each algorithm is with a perfect magnitude).

The true spectrum is `features.stft` of the recording, the same frames the head predicts (frame t centred on sample
t * hop), so "vocoder magnitude, true phase" with a perfect magnitude would give the recording back.
"""

from __future__ import annotations

import argparse
import datetime

import numpy as np

from benchmarks.measure import machine, progress, publish
from mmspeech_jax.host_memory import keep_freed_memory

DEFAULT_CUTOFFS = (500.0, 1000.0, 2000.0, 4000.0)


def mixed_phase(predicted, true, bin_hz: float, cutoff_hz: float):
    """predicted, true (T, F) phases in radians -> (T, F): the true phase in bins whose centre k * bin_hz is below
    `cutoff_hz`, the predicted one elsewhere."""
    below = np.arange(predicted.shape[-1]) * bin_hz < cutoff_hz
    return np.where(below[None, :], true, predicted)


def oracle_spectra(magnitude, phase, true_spectrum, bin_hz: float, cutoffs=DEFAULT_CUTOFFS) -> dict:
    """The head's magnitude and phase (T, F) float and the recording's STFT (T, F) complex -> {row name: (T, F)
    complex128 spectrum} for the rows of the module docstring that need no Griffin-Lim."""
    true_magnitude, true_phase = np.abs(true_spectrum), np.angle(true_spectrum)
    polar = lambda m, p: np.asarray(m, np.float64) * np.exp(1j * np.asarray(p, np.float64))
    rows = {"vocoder": polar(magnitude, phase), "vocoder magnitude, true phase": polar(magnitude, true_phase)}
    for cutoff in cutoffs:
        rows[f"true phase below {cutoff:g} Hz"] = polar(magnitude, mixed_phase(phase, true_phase, bin_hz, cutoff))
    rows["true magnitude, vocoder phase"] = polar(true_magnitude, phase)
    return rows


def magnitude_phase_spectra(magnitude, true_spectrum, n_fft: int, hop: int, win: int) -> dict:
    """The head's magnitude (T, F) float and the recording's STFT (T, F) complex -> {row name: (T, F) complex128}
    for the rows whose phase is computed from a magnitude alone (module docstring)."""
    import jax.numpy as jnp

    from mmspeech_jax.audio.peak_phase import peak_locked_phase
    from mmspeech_jax.audio.phase_gradient import phase_gradient_phase

    true_magnitude = np.abs(true_spectrum)
    polar = lambda m, p: np.asarray(m, np.float64) * np.exp(1j * np.asarray(p, np.float64))
    gradient = lambda m: phase_gradient_phase(jnp.asarray(m, jnp.float32), n_fft, hop, win)
    return {"vocoder magnitude, phase from its gradient": polar(magnitude, gradient(magnitude)),
            "true magnitude, phase from its gradient": polar(true_magnitude, gradient(true_magnitude)),
            "true magnitude, peak-locked phase": polar(true_magnitude,
                                                       peak_locked_phase(jnp.asarray(true_magnitude, jnp.float32),
                                                                         n_fft, hop))}


def main(argv=None) -> dict:
    """Runs the benchmark; returns {"rows": {name: {"pesq_wb", "stoi"}}, "utterances", "vocoder"}."""
    keep_freed_memory()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocoder", required=True, help="an iSTFT vocoder workdir or export")
    p.add_argument("--utterances", type=int, default=20, help="the first N validation utterances")
    p.add_argument("--cutoffs", default=",".join(f"{c:g}" for c in DEFAULT_CUTOFFS),
                   help="Hz, comma-separated: one 'true phase below' row each")
    p.add_argument("--out", default=None, help="also write the results as JSON")
    p.add_argument("--record", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    cutoffs = tuple(float(c) for c in args.cutoffs.split(","))

    import jax
    import jax.numpy as jnp

    from mmspeech_jax.audio.features import stft
    from mmspeech_jax.audio.griffin_lim import griffin_lim, istft, log_mel_to_waveform
    from mmspeech_jax.data import CorpusConfig
    from mmspeech_jax.data.feature_cache import padded_log_mel_and_energy
    from mmspeech_jax.data.synthetic_corpus import generate_corpus
    from mmspeech_jax.errors import ConfigError
    from mmspeech_jax.evaluate.vocoder_quality import pesq_wideband, stoi
    from mmspeech_jax.models.istft_vocoder import ISTFTVocoder, synthesis_phase
    from mmspeech_jax.vocode import Vocoder

    vocoder = Vocoder.from_workdir(args.vocoder)
    config = vocoder.config
    if config.generator != "istft":
        raise ConfigError(f"{args.vocoder} is a {config.generator} vocoder; this benchmark reads an iSTFT head")
    head, mel_config = config.istft.stft_config, config.mel
    model = ISTFTVocoder(config.istft)
    def head_spectrum(params, log_mel):  # the magnitude and the phase the waveform uses (`synthesis_phase`)
        magnitude, phase = model.apply({"params": params}, log_mel[None], method=ISTFTVocoder.magnitude_and_phase)
        return magnitude, synthesis_phase(config.istft, magnitude, phase)

    magnitude_and_phase = jax.jit(head_spectrum)
    corpus = generate_corpus(CorpusConfig(), progress=False)
    utterances = corpus.split("validation")[: args.utterances]
    scores: dict[str, dict[str, list]] = {}
    rate = mel_config.sample_rate
    for n, utterance in enumerate(utterances):
        progress(f"utterance {n + 1}/{len(utterances)}")
        recording = np.asarray(corpus.audio(utterance), np.float32)
        log_mel = padded_log_mel_and_energy(recording, mel_config)[0]
        length = mel_config.hop_samples * (log_mel.shape[0] - 1)
        reference = recording[:length]
        magnitude, phase = (np.asarray(x[0]) for x in magnitude_and_phase(vocoder.params, jnp.asarray(log_mel)))
        true = np.asarray(stft(jnp.asarray(reference), head))[: magnitude.shape[0]]
        frames = true.shape[0]
        rows = oracle_spectra(magnitude[:frames], phase[:frames], true, rate / head.n_fft, cutoffs)
        rows.update(magnitude_phase_spectra(magnitude[:frames], true, head.n_fft, head.hop_samples,
                                            head.win_samples))
        audio = {name: istft(jnp.asarray(s, jnp.complex64), head, length) for name, s in rows.items()}
        audio["Griffin-Lim on the vocoder's magnitude"] = griffin_lim(jnp.asarray(magnitude), jax.random.PRNGKey(0),
                                                                      head)
        audio["Griffin-Lim on the mel (the baseline)"] = log_mel_to_waveform(log_mel, jax.random.PRNGKey(0),
                                                                             mel_config)
        for name, wave in audio.items():
            wave = np.asarray(wave, np.float32)[:length]
            row = scores.setdefault(name, {"pesq_wb": [], "stoi": []})
            row["pesq_wb"].append(pesq_wideband(reference[: wave.size], wave, rate))
            row["stoi"].append(stoi(reference[: wave.size], wave, rate))
    means = {name: {"pesq_wb": float(np.nanmean(r["pesq_wb"])), "stoi": float(np.mean(r["stoi"]))}
             for name, r in scores.items()}
    lines = [f"### iSTFT vocoder: copy synthesis with the true phase or magnitude swapped in — "
             f"{datetime.date.today().isoformat()}", "",
             f"Command: `python -m benchmarks.vocoder_phase --vocoder {args.vocoder} --utterances {args.utterances} "
             f"--cutoffs {args.cutoffs}`", f"Machine: {machine()}", "",
             f"First {len(utterances)} validation utterances of the embedded corpus; vocoder step "
             f"{vocoder.checkpoint_step}.", "", "| spectrum inverted | PESQ-WB | STOI |", "| --- | --- | --- |"]
    lines += [f"| {name} | {m['pesq_wb']:.2f} | {m['stoi']:.3f} |" for name, m in means.items()]
    result = {"rows": means, "utterances": len(utterances), "vocoder": args.vocoder}
    publish("\n".join(lines) + "\n", result, args.out, args.record)
    return result


if __name__ == "__main__":
    main()
