"""The house rules a reader relies on: writers never import torch, no module outgrows its room,
the package ships no test machinery, and old run manifests still read."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "raydist")
MAX_LINES = 400


def _python(code: str) -> str:
    """What a fresh interpreter running `code` prints (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_writer_side_modules_import_no_torch():
    """Writer tasks unpickle the specs' table splits; a torch import there cost ~1.5 CPU-s per process."""
    code = (
        "import sys; import raydist.pipeline.write, raydist.pipeline.embed, raydist.pipeline.compress, "
        "raydist.io.store, raydist.codec.format, raydist.audio.rates, raydist.embedding.features; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchaudio')))"
    )
    assert _python(code) == "[]"


def test_model_codec_and_in_process_trainer_run_without_ray(tmp_path):
    """Audio and model math, the codec and `train.local` are plain torch: they import and train
    where Ray is not installed (a bare GPU box), and pull in no Ray module."""
    code = (
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray': raise ImportError('ray is not installed')\n"
        "sys.meta_path.insert(0, NoRay())\n"
        "import raydist.train.local, raydist.codec.codec, raydist.embedding.encode, raydist.eval.quality, raydist.hear\n"
        "from raydist.config import ModelConfig, TrainConfig\n"
        "from raydist.demo.corpus import write_corpus\n"
        "from raydist.model.checkpoint import read_checkpoint\n"
        f"corpus = write_corpus({str(tmp_path)!r}, n_clips=8)\n"
        f"uri = raydist.train.local.train_local([corpus], {str(tmp_path / 'm')!r}, TrainConfig(batch_size=4), "
        "ModelConfig.from_preset('small', hidden=16), steps=2)\n"
        "print(read_checkpoint(uri)[0]['step'], sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    assert _python(code) == "2 []"


def _modules() -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(PACKAGE) for f in files if f.endswith(".py")]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_module_outgrows_its_room(path):
    with open(path) as f:
        assert sum(1 for _ in f) <= MAX_LINES


def test_every_package_says_what_it_owns():
    import importlib

    for name in sorted(os.listdir(PACKAGE)):
        if os.path.isfile(os.path.join(PACKAGE, name, "__init__.py")):
            doc = importlib.import_module(f"raydist.{name}").__doc__
            assert doc and len(doc.split()) >= 20, name


def test_an_old_manifest_upgrades_to_the_split_configs():
    from raydist.config import OutputConfig, ResourceConfig, SegmentConfig
    from raydist.eval.settings import upgrade_manifest

    old = {
        "run_id": "r1",
        "embed_config": {
            "batch_size": 8,
            "actors": 0,
            "cpus_per_actor": 0.5,
            "gpus_per_actor": 0.0,
            "decode_batch": 32,
            "decode_cpus": 0.5,
            "rows_per_file": 100,
            "dtype": "float32",
            "keep_logvar": True,
            "novelty_s": 0.5,
            "min_segment_s": 0.15,
            "novelty_threshold": 1.5,
            "activity_weight": 0.0,
            "retry_errors": False,
        },
    }
    new = upgrade_manifest(old)
    assert ResourceConfig.from_dict(new["resource_config"]) == ResourceConfig(batch_size=8)
    assert OutputConfig.from_dict(new["output_config"]) == OutputConfig(
        rows_per_file=100, dtype="float32", keep_logvar=True
    )
    assert SegmentConfig.from_dict(new["segment_config"]) == SegmentConfig(
        novelty_s=0.5,
        novelty_threshold=1.5,
        activity_weight=0.0,
        cepstral_weight=0.0,
        noise_margin_db=0.0,
        placement="middle",
        n_cepstra=12,
    )  # what runs before the cepstra, the noise floor and onsets did


def test_a_schema_1_output_still_reads(tmp_path):
    """Runs written before events/ existed: clips read (n_events absent), events/ reads empty, and
    evaluations get the run's settings from its old embed_config."""
    import json

    import pyarrow.parquet as pq

    from raydist.config import SegmentConfig
    from raydist.eval.settings import run_settings
    from raydist.io.schema import CLIPS, EVENTS
    from raydist.io.store import read_table

    old_clips = CLIPS.remove(CLIPS.get_field_index("n_events"))
    row = {"id": "a.wav", "uri": "/x/a.wav", "duration_s": 1.0, "n_frames": 13, "embedding": [0.0] * 64}
    (tmp_path / "clips").mkdir()
    pq.write_table(old_clips.empty_table().from_pylist([row], schema=old_clips), tmp_path / "clips" / "p1.parquet")
    embed_config = {"novelty_s": 0.5, "min_segment_s": 0.15, "novelty_threshold": 1.0, "activity_weight": 1.0}
    manifest = {
        "run_id": "r1",
        "files": {"clips": ["p1.parquet"]},
        "feature_config": {},
        "model_config": {},
        "embed_config": {**embed_config, "batch_size": 32, "rows_per_file": 2000, "retry_errors": False},
    }
    (tmp_path / "_runs").mkdir()
    (tmp_path / "_runs" / "r1.json").write_text(json.dumps(manifest))
    clips = read_table(str(tmp_path), "clips")
    assert clips.column("id").to_pylist() == ["a.wav"] and "n_events" not in clips.column_names
    events = read_table(str(tmp_path), "events")
    assert events.num_rows == 0 and events.schema.equals(EVENTS)
    old = SegmentConfig(novelty_s=0.5, cepstral_weight=0.0, noise_margin_db=0.0, placement="middle", n_cepstra=12)
    assert run_settings(str(tmp_path)).segments == old
