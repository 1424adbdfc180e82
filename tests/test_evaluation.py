"""Probe, segmentation evaluation, pictures and report on a real (small) embedding run."""

from __future__ import annotations

import json
import os

import pytest

from raydist.demo.corpus import write_corpus
from raydist.eval.plots import training_curves
from raydist.eval.probe import run_probe
from raydist.eval.report import write_report
from raydist.eval.segments import run_segment_eval
from raydist.pipeline.embed import embed

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG and os.path.getsize(path) > 1000


def test_probe_segment_eval_and_report(ray_session, checkpoint, tmp_path):
    manifest = write_corpus(str(tmp_path / "corpus"), n_clips=30, seed=11)
    emb = str(tmp_path / "emb")
    embed([manifest], emb, checkpoint, progress=False)
    out = str(tmp_path / "report")

    probe = run_probe(emb, out, folds=3, baseline=True)
    assert probe["clips"] == 30 and probe["classes"] == ["chirp", "clicks", "mixture", "noise", "tone"]
    for name in ("vae", "logmel", "mfcc"):
        assert 0.0 <= probe[name]["accuracy"] <= 1.0
    assert sum(map(sum, probe["vae"]["confusion"])) == 30
    assert probe["mfcc"]["accuracy"] > 0.5  # the baseline separates these classes well above chance (0.2)

    segs = run_segment_eval(emb, os.path.join(str(tmp_path / "corpus"), "segments.csv"), out)
    assert segs["clips"] == 30
    for name in ("events", "segments", "logmel_novelty"):
        for w in ("0.5s", "0.25s"):
            assert 0.0 <= segs[name][w]["f_measure"] <= 1.0
        assert segs[name]["0.5s"]["f_measure"] >= segs[name]["0.25s"]["f_measure"]  # looser window, more hits

    history = [
        {"epoch": 0, "val_loss": 3.0, "val_kl": 0.1, "active_dims": 4},
        {"epoch": 1, "loss": 2.0, "val_loss": 1.5, "val_kl": 0.5, "active_dims": 9},
    ]
    pictures = [*probe["pictures"], *segs["pictures"], training_curves(history, os.path.join(out, "training.png"))]
    assert len(pictures) == 4 and all(_is_png(p) for p in pictures)
    assert json.load(open(os.path.join(out, "probe.json")))["clips"] == 30
    report = write_report(os.path.join(out, "report.md"), {"probe": probe, "segmentation": segs})
    text = open(report).read()
    assert "## probe" in text and "![confusion.png](confusion.png)" in text
    assert f"| clips | {probe['clips']} |" in text and "```json" not in text  # tables, not JSON dumps
    page = open(os.path.join(out, "report.html")).read()
    assert '<img src="confusion.png"' in page and f"<td>{probe['clips']}</td>" in page


def test_probe_refuses_too_few_labels(ray_session, checkpoint, tmp_path):
    from kit import write_tone

    for i in range(3):
        write_tone(str(tmp_path / "a" / f"t{i}.wav"))
    emb = str(tmp_path / "emb")
    embed([str(tmp_path / "a")], emb, checkpoint, progress=False)
    with pytest.raises(ValueError, match="only 0 clips have labels"):
        run_probe(emb, str(tmp_path / "out"))


def test_evaluations_use_the_run_settings_and_refuse_mixed_runs(ray_session, checkpoint, tmp_path):
    from kit import write_tone

    from raydist.config import SegmentConfig
    from raydist.eval.settings import run_settings

    for i in range(3):
        write_tone(str(tmp_path / "a" / f"t{i}.wav"), freq=300.0 + 100 * i, seconds=1.0)
    emb = str(tmp_path / "emb")
    custom = SegmentConfig(novelty_s=0.5, novelty_threshold=2.0)
    embed([str(tmp_path / "a")], emb, checkpoint, segments=custom, progress=False)
    settings = run_settings(emb)
    assert settings.segments == custom and settings.downsample == 8

    truth = tmp_path / "truth.csv"
    truth.write_text("id,start_s,end_s\nt0.wav,0.1,0.9\n")
    report = run_segment_eval(emb, str(truth), str(tmp_path / "out"))
    assert report["settings"]["segment_config"] == custom.to_dict()

    write_tone(str(tmp_path / "a" / "t9.wav"))  # a second run with other settings: scored as one, it would lie
    embed([str(tmp_path / "a")], emb, checkpoint, progress=False)
    with pytest.raises(ValueError, match="differ in segment_config"):
        run_settings(emb)


def test_manifests_from_before_the_cepstra_read_as_latents_only():
    """Runs made before segments used cepstra recorded no cepstral_weight: they read back as 0."""
    from raydist.config import SegmentConfig
    from raydist.eval.settings import upgrade_manifest

    before = {k: v for k, v in SegmentConfig(merge_distance=1.65).to_dict().items() if k != "cepstral_weight"}
    read = SegmentConfig.from_dict(upgrade_manifest({"segment_config": before})["segment_config"])
    assert read == SegmentConfig(merge_distance=1.65, cepstral_weight=0.0)
    older = upgrade_manifest({"embed_config": {"novelty_s": 0.25, "batch_size": 8}})  # before 0.2: one config
    assert SegmentConfig.from_dict(older["segment_config"]).cepstral_weight == 0.0
    now = SegmentConfig().to_dict()
    assert upgrade_manifest({"segment_config": now})["segment_config"] == now


def test_signed_offsets_of_matched_boundaries():
    from raydist.eval.boundaries import signed_offsets

    assert signed_offsets([1.0, 2.0, 5.0], [0.9, 2.05, 3.0], 0.5) == pytest.approx([-0.1, 0.05])
    assert signed_offsets([1.0], [], 0.5) == []
