"""Training windows as a Ray Data dataset: inputs table -> decode -> fixed-length log-mel
windows. The driver materialises them in the object store and splits them into one part per
worker, so no worker loads the corpus."""

from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import torch

from raydist.audio import AudioError, LogMel, decode
from raydist.config import FeatureConfig

if TYPE_CHECKING:
    import ray


def is_validation(clip_id: str, fraction: float) -> bool:
    """Stable split by id hash: the same clip is held out on every run and machine."""
    h = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


def split_inputs(table: pa.Table, fraction: float) -> tuple[pa.Table, pa.Table]:
    mask = pa.array([is_validation(i, fraction) for i in table.column("id").to_pylist()])
    return table.filter(pa.compute.invert(mask)), table.filter(mask)


def cut_windows(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """(N,) -> (K, window): windows every `hop` samples; the tail window is aligned to the end,
    and clips shorter than a window are padded with silence."""
    if len(wave) <= window:
        return np.pad(wave, (0, window - len(wave)))[None]
    starts = list(range(0, len(wave) - window + 1, hop))
    if starts[-1] != len(wave) - window:
        starts.append(len(wave) - window)
    return np.stack([wave[s : s + window] for s in starts])


@lru_cache(maxsize=4)
def _logmel(cfg: FeatureConfig) -> LogMel:
    return LogMel(cfg)


def make_windows(
    batch: dict[str, np.ndarray],
    features: dict[str, Any],
    window_s: float,
    hop_s: float,
    storage_options: dict | None,
    column: str = "logmel",
) -> dict[str, np.ndarray]:
    """Ray Data map_batches function: a batch of inputs -> a batch of windows, as log-mel
    (`column="logmel"`: (K, n_mels, frames), what the VAE trains on) or as waveform at the model
    rate (`column="wave"`: (K, samples), what the vocoder trains on).

    Inputs that fail to decode are skipped with a message on stderr; training goes on."""
    cfg = FeatureConfig.from_dict(features)
    window, hop = int(round(window_s * cfg.sample_rate)), int(round(hop_s * cfg.sample_rate))
    windows = []
    for uri in batch["uri"]:
        try:
            wave, _ = decode(str(uri), cfg.sample_rate, storage_options=storage_options)
        except AudioError as e:
            print(f"raydist: skipping {uri} for training: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        windows.append(cut_windows(wave, window, hop))
    waves = np.concatenate(windows) if windows else np.zeros((0, window), np.float32)
    if column == "wave":
        return {"wave": waves.astype(np.float32)}
    if not windows:
        return {"logmel": np.zeros((0, cfg.n_mels, 1 + window // cfg.hop_length), np.float32)}
    with torch.inference_mode():
        logmel = _logmel(cfg)(torch.from_numpy(waves)).numpy()  # (K, n_mels, T)
    return {"logmel": logmel}


def windows_dataset(
    table: pa.Table,
    features: FeatureConfig,
    window_s: float,
    hop_s: float,
    storage_options: dict | None = None,
    column: str = "logmel",
) -> ray.data.Dataset:
    """One row per training window: logmel (n_mels, frames), or wave (samples) for the vocoder."""
    import ray  # here, so the in-process trainer (`train.local`) runs where Ray is not installed

    ds = ray.data.from_arrow(table.select(["uri"]))
    ds = ds.repartition(max(1, min(64, table.num_rows // 8)))
    return ds.map_batches(
        make_windows,
        fn_args=(features.to_dict(), window_s, hop_s, storage_options, column),
        batch_size=8,
        num_cpus=1,
    )
