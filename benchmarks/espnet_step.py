"""ESPnet's train steps on this machine, for the like-for-like comparison that issues #3 and #4 ask for.

    python -m benchmarks.espnet_step --model tts      # ESPnet2 FastSpeech2, egs2/ljspeech train_fastspeech2.yaml
    python -m benchmarks.espnet_step --model asr      # ESPnet2 Conformer encoder + CTC, egs2/librispeech_100
                                                      # train_conformer_ctc.yaml (18 blocks, 256 wide)

Needs PyTorch and ESPnet, which are not dependencies of mmspeech_jax: install them into a separate environment,
e.g. `python -m venv /tmp/espnet && /tmp/espnet/bin/pip install torch espnet` (if a dependency fails to build,
`pip install torch numpy typeguard humanfriendly packaging && pip install --no-deps espnet` is enough for the two
modules used here), then run this file with that environment's python from the repository root.

The batches are `benchmarks/synthetic.py`'s, the same seeded lengths and shapes as `benchmarks.tts_step` and
`benchmarks.asr_step` (TTS: 16 utterances, text 60-150, mel 400-800, external durations; ASR: 16 utterances of
500-1500 frames of 80-dim features, 80-120 characters). One step = forward, loss, backward, global-norm clipping
at 1.0 and an Adam update, float32, `torch.set_num_threads(os.cpu_count())`; median of `--steps` after one warm-up
step. ESPnet's own data loading, feature normalisation and logging are left out (they are not in our step either).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.cpu import cpu_description
from benchmarks.synthetic import asr_batch, tts_batch

TTS_VOCAB = 141  # the symbol count benchmarks.tts_step uses
ASR_VOCAB = 33   # CTC blank + 32 characters, as benchmarks.asr_step


def tts_model_and_inputs(torch, batch_size: int):
    from espnet2.tts.fastspeech2.fastspeech2 import FastSpeech2

    # egs2/ljspeech/tts1/conf/tuning/train_fastspeech2.yaml, tts_conf
    model = FastSpeech2(
        idim=TTS_VOCAB, odim=80, adim=384, aheads=2, elayers=4, eunits=1536, dlayers=4, dunits=1536,
        positionwise_layer_type="conv1d", positionwise_conv_kernel_size=3, duration_predictor_layers=2,
        duration_predictor_chans=256, duration_predictor_kernel_size=3, postnet_layers=5, postnet_filts=5,
        postnet_chans=256, use_masking=True, use_scaled_pos_enc=True, encoder_normalize_before=True,
        decoder_normalize_before=True, reduction_factor=1, init_type="xavier_uniform",
        transformer_enc_dropout_rate=0.2, transformer_enc_positional_dropout_rate=0.2,
        transformer_enc_attn_dropout_rate=0.2, transformer_dec_dropout_rate=0.2,
        transformer_dec_positional_dropout_rate=0.2, transformer_dec_attn_dropout_rate=0.2,
        pitch_predictor_layers=5, pitch_predictor_chans=256, pitch_predictor_kernel_size=5,
        pitch_predictor_dropout=0.5, pitch_embed_kernel_size=1, pitch_embed_dropout=0.0,
        stop_gradient_from_pitch_predictor=True, energy_predictor_layers=2, energy_predictor_chans=256,
        energy_predictor_kernel_size=3, energy_predictor_dropout=0.5, energy_embed_kernel_size=1,
        energy_embed_dropout=0.0, stop_gradient_from_energy_predictor=False)
    b = tts_batch(batch_size, TTS_VOCAB)
    n_len = b["token_lengths"].astype(np.int64)
    n_max = b["tokens"].shape[1]
    # ESPnet appends an end-of-sentence token: durations and token-averaged pitch/energy have n+1 entries (the
    # last duration 0).
    durations = np.zeros((batch_size, n_max + 1), np.int64)
    durations[:, :n_max] = b["durations"]
    rng = np.random.default_rng(1)
    token_values = lambda: (rng.normal(size=(batch_size, n_max + 1, 1))
                            * (np.arange(n_max + 1)[None, :, None] <= n_len[:, None, None])).astype(np.float32)
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    inputs = dict(text=t(b["tokens"].astype(np.int64)), text_lengths=t(n_len), feats=t(b["mel"]),
                  feats_lengths=t(b["frame_lengths"].astype(np.int64)), durations=t(durations),
                  durations_lengths=t(n_len + 1), pitch=t(token_values()), pitch_lengths=t(n_len + 1),
                  energy=t(token_values()), energy_lengths=t(n_len + 1))
    return model, lambda: model(**inputs)[0], {"frames": int(b["frame_lengths"].sum())}


def asr_model_and_inputs(torch, batch_size: int):
    from espnet2.asr.ctc import CTC
    from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
    from espnet2.asr.specaug.specaug import SpecAug

    # egs2/librispeech_100/asr1/conf/tuning/train_conformer_ctc.yaml: encoder_conf, specaug_conf, ctc_weight 1.0
    encoder = ConformerEncoder(
        input_size=80, output_size=256, attention_heads=4, linear_units=1024, num_blocks=18, dropout_rate=0.1,
        positional_dropout_rate=0.1, attention_dropout_rate=0.1, input_layer="conv2d", normalize_before=True,
        macaron_style=True, rel_pos_type="latest", pos_enc_layer_type="rel_pos",
        selfattention_layer_type="rel_selfattn", activation_type="swish", use_cnn_module=True, cnn_module_kernel=31,
        use_flash_attn=False)
    specaug = SpecAug(apply_time_warp=True, time_warp_window=5, time_warp_mode="bicubic", apply_freq_mask=True,
                      freq_mask_width_range=(0, 27), num_freq_mask=2, apply_time_mask=True,
                      time_mask_width_ratio_range=(0.0, 0.05), num_time_mask=5)
    ctc = CTC(odim=ASR_VOCAB, encoder_output_size=256)
    model = torch.nn.ModuleDict({"encoder": encoder, "specaug": specaug, "ctc": ctc})
    b = asr_batch(batch_size)
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    feats, feat_lens = t(b["features"]), t(b["frame_mask"].sum(1).astype(np.int64))
    labels, label_lens = t(b["labels"].astype(np.int64)), t(b["label_mask"].sum(1).astype(np.int64))

    def loss():
        x, lens = specaug(feats, feat_lens)
        h, h_lens, _ = encoder(x, lens)
        return ctc(h, h_lens, labels, label_lens)

    return model, loss, {"frames": int(b["frame_mask"].sum())}


def run(which: str, batch_size: int, steps: int) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    build = tts_model_and_inputs if which == "tts" else asr_model_and_inputs
    model, loss_fn, info = build(torch, batch_size)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return float(loss)

    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = step()
        if i:  # the first step warms up the allocator and oneDNN kernels
            times.append(time.perf_counter() - start)
        print(f"step {i}: {time.perf_counter() - start:.2f} s, loss {loss:.3f}", flush=True)
    median = float(np.median(times))
    n_params = sum(p.numel() for p in model.parameters())
    return {"model": which, "params_m": n_params / 1e6, "step_s": median, "frames_per_s": info["frames"] / median,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tts", "asr"], default="tts")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    import espnet

    r = run(args.model, args.batch_size, args.steps)
    print(f"\nMachine: {cpu_description()}, torch {r['torch']} ({r['threads']} threads), espnet {espnet.__version__}\n")
    print("| ESPnet model | params | batch | median step | input frames/s |\n| --- | --- | --- | --- | --- |")
    print(f"| {r['model']} | {r['params_m']:.1f} M | {args.batch_size} | {r['step_s']:.2f} s | {r['frames_per_s']:.0f} |")


if __name__ == "__main__":
    main()
