"""The settings an embedding run was made with, read back from its run manifests, so evaluations
score a run with the settings it used (never re-created defaults)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from raydist.config import FeatureConfig, ModelConfig, SegmentConfig, split_embed_config
from raydist.io.store import RunStore

KEYS = ("feature_config", "model_config", "segment_config")


@dataclass(frozen=True)
class RunSettings:
    features: FeatureConfig  # the model's front end (recorded from the checkpoint)
    model: ModelConfig  # the model's shape: downsample gives the latent frame rate
    segments: SegmentConfig  # novelty window, gap, threshold, activity weight

    @property
    def downsample(self) -> int:
        return self.model.downsample


def upgrade_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest of any raydist version -> the current keys (older runs had one embed_config)."""
    if "embed_config" in manifest:
        manifest = {**manifest, **split_embed_config(manifest["embed_config"])}
    if "segment_config" in manifest and "cepstral_weight" not in manifest["segment_config"]:
        manifest = {**manifest, "segment_config": {**manifest["segment_config"], "cepstral_weight": 0.0}}
    if "segment_config" in manifest and "placement" not in manifest["segment_config"]:  # before onsets
        old = {"placement": "middle", "noise_margin_db": 0.0, "n_cepstra": 12}
        manifest = {**manifest, "segment_config": {**manifest["segment_config"], **old}}
    return manifest


def run_settings(out: str, storage_options: dict[str, Any] | None = None) -> RunSettings:
    """The settings shared by every committed run in `out`; ValueError if there is no run or if
    runs disagree (their outputs cannot be scored as one)."""
    manifests = [upgrade_manifest(m) for m in RunStore(out, storage_options).manifests()]
    manifests = [m for m in manifests if "segment_config" in m]  # embedding runs (not compress)
    if not manifests:
        raise ValueError(f"{out} holds no committed embedding run")
    first = {k: manifests[0].get(k) for k in KEYS}  # another team's encoder: no VAE configs
    for m in manifests[1:]:
        for k in KEYS:
            if m.get(k) != first[k]:
                raise ValueError(
                    f"runs {manifests[0]['run_id']} and {m['run_id']} in {out} differ in {k}: "
                    f"{json.dumps(first[k])} vs {json.dumps(m[k])}; score them separately"
                )
    return RunSettings(  # without the VAE's: the default front end, for the log-mel baselines
        FeatureConfig.from_dict(first["feature_config"] or {}),
        ModelConfig.from_dict(first["model_config"] or {}),
        SegmentConfig.from_dict(first["segment_config"]),
    )
