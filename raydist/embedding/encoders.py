"""Which encoder a run embeds with, no Ray: raydist's VAE (a checkpoint) or any module that
implements the HEAR 2021 API (`load_model`, `get_scene_embeddings`, `get_timestamp_embeddings`,
`model.sample_rate`), given by an importable name or a `.py` file.

    uri = hear_uri("hearbaseline.naive")          # "hear:hearbaseline.naive"; with weights "hear:MOD|PATH"
    ident = identify(uri)                          # what the run records; refuses a module without the API
    enc = HearEncoder(uri); out = enc.encode(waves)  # per wave: scene (S,), timestamp embeddings (T, D), times (T,) s

The pipeline passes the encoder around as one string (`model_uri`): a checkpoint's path, or
`hear:MODULE[|WEIGHTS]`.

Long audio is encoded in chunks of CHUNK_S seconds, each with the module's declared context
(`context_s` on the model or the module, 0 if it declares none) on both sides, keeping only the
timestamps inside the chunk: timestamp embeddings then equal whole-file encoding when the module's
receptive field is within its declared context. The scene embedding of a chunked file is the
duration-weighted mean of its chunks' scene embeddings (not what the module gives on the whole
file: a mean over time equals it, a max or std does not).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from raydist.errors import UsageError

PREFIX = "hear:"
CHUNK_S = 60.0  # seconds of audio given to the module at once
API = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")


def hear_uri(module: str, weights: str | None = None) -> str:
    return PREFIX + module + (f"|{weights}" if weights else "")


def is_hear(uri: str) -> bool:
    return uri.startswith(PREFIX)


def parse(uri: str) -> tuple[str, str | None]:
    """`hear:MODULE[|WEIGHTS]` -> (module, weights or None)."""
    module, _, weights = uri[len(PREFIX) :].partition("|")
    return module, weights or None


@dataclass
class Identity:
    """What a run records about its encoder; `vae_sha256` is the key runs on one output must share
    (for the VAE: its weights, so a checkpoint that adds a vocoder still matches)."""

    uri: str
    sha256: str
    vae_sha256: str
    sample_rate: int
    step: int | None = None
    configs: dict[str, Any] = field(default_factory=dict)  # recorded in the run manifest


def import_module(module: str) -> ModuleType:
    """An importable name or a path to a `.py` file -> the module, checked for the HEAR API;
    UsageError (exit 2) naming what is missing."""
    try:
        if module.endswith(".py"):
            if not os.path.exists(module):
                raise UsageError(f"--encoder {module} does not exist")
            name = "raydist_hear_" + hashlib.sha256(os.path.abspath(module).encode()).hexdigest()[:12]
            if name in sys.modules:
                mod = sys.modules[name]
            else:
                spec = importlib.util.spec_from_file_location(name, module)
                mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[name] = mod
                spec.loader.exec_module(mod)  # type: ignore[union-attr]
        else:
            mod = importlib.import_module(module)
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001 - ImportError, or the module's own import failing
        raise UsageError(f"--encoder {module} cannot be imported: {type(e).__name__}: {e}") from None
    missing = [f for f in API if not callable(getattr(mod, f, None))]
    if missing:
        raise UsageError(
            f"--encoder {module} does not implement the HEAR API: it has no {', '.join(missing)} "
            "(see https://hearbenchmark.com/hear-api.html)"
        )
    return mod


def _version(mod: ModuleType, module: str) -> str | None:
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version

        return version(module.split(".")[0])
    except Exception:  # noqa: BLE001 - a file or an uninstalled package: no version
        return None


def _file_sha256(path: str, storage_options: dict | None = None) -> str:
    import fsspec

    h = hashlib.sha256()
    with fsspec.open(path, "rb", **(storage_options or {})) as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def identify(uri: str, storage_options: dict | None = None) -> Identity:
    """The encoder behind `uri`, loaded once here (a bad one fails before any work starts)."""
    if not is_hear(uri):
        from raydist.model.checkpoint import load_model

        m = load_model(uri, storage_options=storage_options)
        recorded = {"feature_config": m.features.to_dict(), "model_config": m.vae.cfg.to_dict()}
        return Identity(uri, m.checkpoint_id, m.vae_id, m.features.sample_rate, m.step, recorded)
    module, weights = parse(uri)
    mod = import_module(module)
    return hear_identity(uri, mod, mod.load_model(weights) if weights else mod.load_model(), storage_options)


def hear_identity(uri: str, mod: ModuleType, model: Any, storage_options: dict | None = None) -> Identity:
    """`identify` of a HEAR module whose model is loaded already."""
    module, weights = parse(uri)
    is_file = module.endswith(".py")
    info = {
        "module": os.path.abspath(module) if is_file else module,
        "version": _version(mod, module) if not is_file else None,
        "source_sha256": _file_sha256(module) if is_file else None,  # a file's code is its version
        "weights": weights,
        "weights_sha256": _file_sha256(weights, storage_options) if weights else None,
        "sample_rate": int(model.sample_rate),
        "scene_embedding_size": int(getattr(model, "scene_embedding_size", 0)),
        "timestamp_embedding_size": int(getattr(model, "timestamp_embedding_size", 0)),
    }
    key = {k: info[k] for k in ("module", "version", "source_sha256", "weights_sha256")}
    sha = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return Identity(uri, sha, sha, info["sample_rate"], None, {"encoder": info})


def check_same(manifests: list[dict], model: Identity, out: str) -> None:
    """Refuse to add another encoder's rows to an output (vectors of two encoders do not mix);
    a checkpoint that adds a vocoder to the same VAE is the same encoder."""
    for m in manifests:
        theirs = m.get("model", {})
        if theirs.get("vae_sha256", theirs.get("sha256")) not in (None, model.vae_sha256):
            raise UsageError(
                f"{out} holds rows embedded with {theirs.get('uri')} (encoder {theirs.get('vae_sha256', '')[:12]}); "
                f"{model.uri} is another encoder ({model.vae_sha256[:12]}) and its vectors would not be comparable: "
                "write it to another --out"
            )


@dataclass
class Encoded:
    scene: np.ndarray  # (S,) float32
    frames: np.ndarray  # (T, D) float32 timestamp embeddings
    times_s: np.ndarray  # (T,) float64 timestamps, seconds


class HearEncoder:
    """One loaded HEAR model: waveforms at its `sample_rate` -> scene and timestamp embeddings."""

    def __init__(self, uri: str, device: str = "cpu"):
        module, weights = parse(uri)
        self.mod = import_module(module)
        self.model = self.mod.load_model(weights) if weights else self.mod.load_model()
        if device != "cpu" and hasattr(self.model, "to"):
            self.model = self.model.to(device)
        self.device = device
        self.sample_rate = int(self.model.sample_rate)
        ctx = getattr(self.model, "context_s", getattr(self.mod, "context_s", 0.0))
        self.context = int(round(float(ctx or 0.0) * self.sample_rate))

    def _call(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        audio = torch.from_numpy(batch).to(self.device)
        with torch.no_grad():
            scene = self.mod.get_scene_embeddings(audio, self.model)
            frames, ts = self.mod.get_timestamp_embeddings(audio, self.model)
        as_np = lambda t: t.detach().float().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)  # noqa: E731
        return as_np(scene), as_np(frames), as_np(ts).astype(np.float64) / 1000.0

    def encode(self, waves: list[np.ndarray]) -> list[Encoded]:
        """Waves of equal length share one call; long ones go chunk by chunk."""
        out: list[Encoded | None] = [None] * len(waves)
        groups: dict[int, list[int]] = {}
        chunk = int(CHUNK_S * self.sample_rate)
        for i, w in enumerate(waves):
            if len(w) > chunk:
                out[i] = self._long(w, chunk)
            else:
                groups.setdefault(len(w), []).append(i)
        for idx in groups.values():
            scene, frames, ts = self._call(np.stack([waves[i] for i in idx]).astype(np.float32))
            for k, i in enumerate(idx):
                out[i] = Encoded(scene[k].astype(np.float32), frames[k].astype(np.float32), ts[k])
        return out  # type: ignore[return-value]

    def _long(self, wave: np.ndarray, chunk: int) -> Encoded:
        scenes, weights, frames, times = [], [], [], []
        for a in range(0, len(wave), chunk):
            b = min(len(wave), a + chunk)
            lo, hi = max(0, a - self.context), min(len(wave), b + self.context)
            scene, f, ts = self._call(wave[None, lo:hi].astype(np.float32))
            t = ts[0] + lo / self.sample_rate
            keep = (t >= a / self.sample_rate) & (t < b / self.sample_rate)
            if b == len(wave):
                keep |= t >= a / self.sample_rate  # the module's last timestamp may sit at the very end
            scenes.append(scene[0])
            weights.append(b - a)
            frames.append(f[0][keep])
            times.append(t[keep])
        scene = np.average(np.stack(scenes), axis=0, weights=weights).astype(np.float32)
        return Encoded(scene, np.concatenate(frames).astype(np.float32), np.concatenate(times))


def frame_energy(wave: np.ndarray, times_s: np.ndarray, rate: int) -> np.ndarray:
    """(T,) log mean power of the audio around each timestamp (half way to its neighbours): the
    activity measure segmentation uses when the encoder has no log-mel of its own."""
    if len(times_s) == 0:
        return np.zeros(0, np.float32)
    mids = (times_s[1:] + times_s[:-1]) / 2
    edges = np.concatenate([[0.0], mids, [len(wave) / rate]])
    idx = np.clip(np.round(edges * rate).astype(int), 0, len(wave))
    power = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    n = np.maximum(idx[1:] - idx[:-1], 1)
    return np.log((power[idx[1:]] - power[idx[:-1]]) / n + 1e-10).astype(np.float32)


__all__ = [
    "CHUNK_S",
    "Encoded",
    "HearEncoder",
    "Identity",
    "check_same",
    "frame_energy",
    "hear_identity",
    "hear_uri",
    "identify",
    "is_hear",
    "parse",
]
