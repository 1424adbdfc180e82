"""The GPU run behind the codec's base/44-dim figures (docs/experiments.md): VAEs and vocoders trained side by side
on one GPU, each vocoder scored on held clips at fixed steps through the codec's own functions
(encode_many -> quantize -> dequantize -> latents_to_audio_batch), in process: the device had
no Ray. Needs only torch, torchaudio, soundfile and raydist.

    python -m bench codec-gpu vae NAME STEPS INPUTS...                 -> $WORK/NAME/model.pt
    python -m bench codec-gpu voc NAME VAE BATCH DEADLINE INPUTS...    (VAE "-": the true log-mel, no VAE)

HELD names the held clips' manifest (`featcorpus.build(..., "held")`, every 5th clip); results,
snapshots of the decoded speech and fp16 weights go to $OUT. The run: two VAEs (`base`, 44 dims,
5,000 steps; TUNE alone, TUNE + `build_speech`), then four vocoders at once until DEADLINE (unix
time): A (TUNE alone), B (with the extra speech), C (B with batch 256), D (the true log-mel).
"""

import json
import os
import time

import numpy as np
import soundfile as sf
import torch

from raydist.codec.format import dequantize, quantize
from raydist.codec.inversion import latents_to_audio_batch
from raydist.config import FeatureConfig, LossConfig, ModelConfig, TrainConfig, VocoderConfig
from raydist.embedding.encode import encode_many
from raydist.eval.quality import logmel_l1, mrstft, si_sdr
from raydist.model.checkpoint import load_model, save_checkpoint
from raydist.model.vocoder import Vocoder, vocoder_terms
from raydist.train.local import batches, load_windows, train_local
from raydist.train.step import crop_waves, make_optimizer, update, vocoder_step

OUT, W = os.environ.get("OUT", "/tmp/out"), os.environ.get("WORK", "/tmp/w")
WRITES_RESULT = False  # results go to $OUT on the device, not to bench/results
DEV = "cuda" if torch.cuda.is_available() else "cpu"
HELD = os.environ.get("HELD", "held/manifest.csv")
L1 = FeatureConfig(n_fft=1024, win_length=1024)
SNAPS = tuple(int(s) for s in os.environ.get("SNAPS", "3000,6000,12000,24000").split(","))


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def held():
    import csv

    base = os.path.dirname(HELD)
    rows = list(csv.DictReader(open(HELD)))
    return rows, [sf.read(os.path.join(base, r["uri"]), dtype="float32")[0] for r in rows]


def score(rows, refs, outs):
    per = {"speech": [], "instrument": []}
    for r, x, y in zip(rows, refs, outs):
        per[r["kind"]].append({"logmel_l1": logmel_l1(x, y, L1), "mrstft": mrstft(x, y), "si_sdr": si_sdr(x, y)})
    return {k: {m: float(np.mean([d[m] for d in v])) for m in v[0]} for k, v in per.items() if v}


@torch.inference_mode()
def decode_codec(m, waves):
    codes = [quantize(lat.mean) for lat in encode_many(m, waves)]
    means = [dequantize(c.codes, c.scale, c.n_frames) for c in codes]
    return latents_to_audio_batch(m, means, [len(w) for w in waves])


@torch.inference_mode()
def decode_true(voc, logmel, waves):
    out = []
    for w in waves:
        x = torch.from_numpy(w).to(DEV)[None]
        y = voc(logmel(x)).float()[0].cpu().numpy()
        out.append(np.clip(np.pad(y, (0, max(0, len(w) - len(y))))[: len(w)], -1, 1))
    return out


def vae(name, steps, inputs):
    t = time.time()
    uri = train_local(
        inputs,
        f"{W}/{name}",
        TrainConfig(seed=0),
        ModelConfig.from_preset("base", latent_dim=44),
        steps=steps,
        device=DEV,
    )
    log(f"vae {name}: {steps} steps in {time.time() - t:.0f} s")
    m = load_model(uri)
    sd = {k: v.half() for k, v in m.vae.state_dict().items()}
    torch.save(
        {"model_config": m.vae.cfg.to_dict(), "model": sd, "steps": steps, "train_s": time.time() - t},
        f"{W}/vae_{name}.pt",
    )


def voc(name, vae_uri, batch, deadline, inputs):
    t0 = time.time()
    true_mel = vae_uri == "-"
    features = FeatureConfig()
    model_cfg = ModelConfig.from_preset("base", latent_dim=44)
    vcfg = VocoderConfig.from_preset("base")
    if true_mel:
        from dataclasses import replace

        from raydist.audio import LogMel

        vcfg = replace(vcfg, use_latents=False)
        logmel, m = LogMel(features).to(DEV), None
    else:
        m = load_model(vae_uri, DEV)
        model_cfg, logmel = m.vae.cfg, m.logmel.to(DEV)
    cfg = TrainConfig(seed=0, batch_size=batch)
    x = load_windows(inputs, cfg, features, column="wave").to(DEV)
    log(f"voc {name}: {len(x)} windows, batch {batch}, load {time.time() - t0:.0f} s")
    torch.manual_seed(0)
    vocoder = Vocoder(vcfg, features, model_cfg).to(DEV)
    if os.environ.get("INIT"):  # go on training a vocoder this script saved
        vocoder.load_state_dict({k: v.float() for k, v in torch.load(os.environ["INIT"])["vocoder"].items()})
    opt = make_optimizer(vocoder, cfg)
    rows, refs = held()
    speech = [i for i, r in enumerate(rows) if r["kind"] == "speech"]
    results, audio, t_train, taken = [], {}, 0.0, 0

    def snapshot():
        vocoder.eval()
        if true_mel:
            outs = decode_true(vocoder, logmel, refs)
        else:
            m.vocoder = vocoder
            outs = decode_codec(m, refs)
        vocoder.train()
        res = {"step": taken, "train_s": t_train, "windows_seen": taken * batch, **score(rows, refs, outs)}
        results.append(res)
        audio[f"s{taken}"] = np.concatenate([np.round(np.asarray(outs[i]) * 32767).astype(np.int16) for i in speech])
        log(f"voc {name} step {taken}: {json.dumps(res)}")
        json.dump(
            {"name": name, "batch": batch, "windows": len(x), "snapshots": results}, open(f"{OUT}/{name}.json", "w")
        )
        np.savez_compressed(f"{OUT}/{name}.npz", lengths=np.array([len(refs[i]) for i in speech]), **audio)

    hop = vocoder.hop
    samples = round(vcfg.segment_s * features.sample_rate / hop) * hop
    for step, _, b in batches(x, cfg, steps=10**9):
        if time.time() > deadline:
            break
        if taken in SNAPS:
            snapshot()
        t = time.time()
        if true_mel:
            target = crop_waves(b, samples, hop)
            with torch.autocast(device_type=DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
                pred = vocoder(logmel(target))
            n = min(pred.shape[-1], target.shape[-1])
            terms = vocoder_terms(pred[..., :n].float(), target[..., :n], logmel)
            update(terms["mel"] + terms["stft"], opt, vocoder, cfg.grad_clip)
        else:
            vocoder_step(vocoder, m.vae, logmel, b, opt, cfg, vcfg, bf16=DEV == "cuda")
        if DEV == "cuda" and step % 200 == 0:
            torch.cuda.synchronize()
        t_train += time.time() - t
        taken = step + 1
    snapshot()
    if not true_mel:
        sd = {k: v.half() for k, v in vocoder.state_dict().items()}
        torch.save({"vocoder_config": vcfg.to_dict(), "vocoder": sd, "step": taken}, f"{W}/voc_{name}.pt")
        save_checkpoint(
            f"{W}/ck_{name}",
            m.vae,
            m.features,
            LossConfig(),
            step=taken,
            epoch=0,
            vocoder=vocoder.eval(),
            stage="vocoder",
        )
    log(f"voc {name}: done, {taken} steps, {t_train:.0f} s of steps")


def main(argv: list[str]) -> None:
    """Writes its results under $OUT (a device run), not to bench/results: returns nothing."""
    torch.set_num_threads(int(os.environ.get("THREADS", "4")))
    os.makedirs(W, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)
    if argv[0] == "vae":
        vae(argv[1], int(argv[2]), argv[3:])
    else:
        voc(argv[1], argv[2], int(argv[3]), float(argv[4]), argv[5:])
