"""Another team's encoder through the pipeline (`raydist embed --encoder MODULE`): a HEAR-API module
written here (a fixed random projection of raw audio frames) runs on the Ray Data pipeline, and
its rows equal what calling the module by hand gives; a failing input is one error row; bad
modules are usage errors before Ray starts; another encoder is refused on the same output; the
index and segment-eval take the output."""

from __future__ import annotations

import csv
import os

import numpy as np
import pyarrow.compute as pc
import pytest
import soundfile as sf
import torch
from kit import write_tone
from typer.testing import CliRunner

from raydist.cli import app
from raydist.config import OutputConfig
from raydist.embedding.encoders import hear_uri, import_module
from raydist.errors import UsageError
from raydist.io.store import read_table
from raydist.pipeline.embed import embed

pytestmark = pytest.mark.slow

TINY = """
import torch

HOP, WIN = 320, 64


class Model(torch.nn.Module):
    sample_rate = 16000
    scene_embedding_size = 8
    timestamp_embedding_size = 6

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(WIN, 6, generator=g)
        self.head = torch.randn(6, 8, generator=g)


def load_model(model_file_path=""):
    return Model()


def get_timestamp_embeddings(audio, model):
    frames = audio.unfold(1, WIN, HOP)  # (n, T, WIN)
    emb = torch.tanh(frames @ model.proj)
    t = (torch.arange(frames.shape[1], dtype=torch.float64) * HOP + WIN / 2) / model.sample_rate * 1000
    return emb, t.expand(audio.shape[0], -1)


def get_scene_embeddings(audio, model):
    if LOUD and audio.abs().amax() > 0.95:
        raise ValueError("this encoder refuses clips louder than 0.95")
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(1) @ model.head
"""


def write_module(path, loud_fails: bool = False) -> str:
    path.write_text(f"LOUD = {loud_fails}\n" + TINY)
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("enc")
    rows = []
    for i in range(5):  # lengths all differ: each clip is its own call, as by hand
        path = write_tone(str(root / f"e{i}.wav"), freq=220 * (i + 1), seconds=1.0 + 0.3 * i)
        rows.append({"uri": path, "id": f"e{i}", "label": "a" if i % 2 else "b"})
    x, sr = sf.read(rows[2]["uri"], dtype="float32")
    loud = str(root / "loud.wav")
    sf.write(loud, np.concatenate([x, np.ones(800, np.float32) * 0.99]), sr)
    rows.append({"uri": loud, "id": "loud", "label": "a"})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, ["uri", "id", "label"])
        w.writeheader()
        w.writerows(rows)
    return {"root": root, "rows": rows, "manifest": str(manifest)}


def by_hand(module_path: str, wave: np.ndarray):
    mod = import_module(module_path)
    model = mod.load_model()
    audio = torch.from_numpy(wave[None])
    scene = mod.get_scene_embeddings(audio, model)[0].numpy()
    emb, ts = mod.get_timestamp_embeddings(audio, model)
    return scene, emb[0].numpy(), ts[0].numpy() / 1000


def test_a_hear_module_runs_through_embed_and_gives_what_it_gives_by_hand(clips, ray_session, tmp_path):
    module = write_module(tmp_path / "tinyhear.py", loud_fails=True)
    out = str(tmp_path / "out")
    s = embed([clips["manifest"]], out, hear_uri(module), output=OutputConfig(dtype="float32"), progress=False)
    assert (s.ok, s.failed) == (5, 1)
    [err] = read_table(out, "errors").to_pylist()
    assert err["id"] == "loud" and err["stage"] == "encode" and "louder than 0.95" in err["message"]
    got = read_table(out, "clips")
    frames = read_table(out, "frames")
    assert "logvar" not in frames.column_names  # what only the VAE gives is not in the schema
    for row in clips["rows"][:5]:
        scene, emb, ts = by_hand(module, sf.read(row["uri"], dtype="float32")[0])
        clip = got.filter(pc.equal(got.column("id"), row["id"])).to_pylist()[0]
        assert clip["embedding"] == scene.astype(np.float32).tolist() and clip["label"] == row["label"]
        f = frames.filter(pc.equal(frames.column("id"), row["id"])).to_pylist()[0]
        assert f["mean"] == emb.astype(np.float32).tolist() and f["n_frames"] == len(ts)
        assert f["start_s"] == pytest.approx(ts[0]) and f["frame_rate"] == pytest.approx(1 / (ts[1] - ts[0]))
        assert clip["n_segments"] >= 1 and len(f["energy"]) == len(ts)
    manifest = [m for m in __import__("raydist.io.store", fromlist=["RunStore"]).RunStore(out).manifests()][0]
    assert manifest["encoder"]["module"] == os.path.abspath(module) and manifest["model"]["uri"] == hear_uri(module)

    # the index and segment-eval take the output as it is
    from raydist.eval.segments import run_segment_eval
    from raydist.search.index import build_index
    from raydist.search.query import search_audio, search_ids

    idx = str(tmp_path / "idx")
    assert build_index(out, idx)["rows"] == 5
    assert search_ids(idx, ["e3"], k=1)[0].column("id")[0].as_py() == "e3"
    [hits] = search_audio(idx, [clips["rows"][1]["uri"]], k=1)
    assert hits.column("id")[0].as_py() == "e1" and hits.column("distance")[0].as_py() < 1e-5
    truth = tmp_path / "truth.csv"
    truth.write_text("id,start_s,end_s\ne4,0.0,1.0\ne4,1.0,2.2\n")
    report = run_segment_eval(out, str(truth), str(tmp_path / "seg"))
    assert report["clips"] == 1 and report["reference_boundaries"] == 1

    # another encoder on the same output is refused, naming both
    other = write_module(tmp_path / "otherhear.py")
    with pytest.raises(UsageError, match="another encoder"):
        embed([clips["manifest"]], out, hear_uri(other), progress=False)


def test_missing_or_wrong_modules_are_usage_errors_before_ray_starts(clips, tmp_path, checkpoint):
    runner = CliRunner()
    no_api = tmp_path / "notheear.py"
    no_api.write_text("def load_model(path=''):\n    return None\n")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_package_anywhere\n")
    out = str(tmp_path / "o")
    cases = [
        (["--encoder", "no_such_module_xyz"], "cannot be imported"),
        (["--encoder", str(broken)], "cannot be imported: ModuleNotFoundError"),
        (["--encoder", str(no_api)], "does not implement the HEAR API: it has no get_scene_embeddings"),
        (["--encoder", str(tmp_path / "absent.py")], "does not exist"),
        ([], "give --model CKPT"),
        (["--model", checkpoint, "--encoder", str(no_api)], "one of the two"),
        (["--model", checkpoint, "--weights", checkpoint], "--weights goes with --encoder"),
    ]
    for args, message in cases:
        r = runner.invoke(app, ["embed", clips["manifest"], "--out", out, *args])
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    assert not os.path.exists(out)
