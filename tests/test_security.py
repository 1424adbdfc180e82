"""Untrusted input and secrets: tampered compressed sets are refused row by row, and no credential
reaches outputs, run manifests, error rows, messages or Ray's logs."""

from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow as pa
import pytest
from kit import flaky_proxy, write_tone

from raydist.codec.codec import Codec
from raydist.codec.format import CodecError
from raydist.io.inputs import storage_options_for
from raydist.model.checkpoint import load_model
from raydist.pipeline.decompress import DecodeAudio
from raydist.pipeline.embed import embed
from raydist.pipeline.runner import RunFailed

FAKE_KEY = "AKIAFAKELEAKCHECK042"
FAKE_SECRET = "fakeSecret/LeakCheck+0123456789abcdefXYZ"


def _row(m, seconds: float = 1.0) -> dict:
    """A consistent compressed row for model `m` (what CompressBatch writes)."""
    samples = int(seconds * m.features.sample_rate)
    n = samples // (m.vae.cfg.downsample * m.features.hop_length) + 1
    dims = m.vae.cfg.latent_dim
    codes = np.random.default_rng(0).integers(-127, 128, (n, dims), dtype=np.int8)
    return {
        "id": "ok",
        "uri": "x.wav",
        "duration_s": samples / m.features.sample_rate,
        "sample_rate": 22050,
        "channels": 1,
        "num_samples": samples,
        "n_frames": n,
        "scale": [1.0] * dims,
        "codes": codes.tobytes(),
        "source_bytes": 1000,
    }


TAMPERED = {  # field -> (value, message)
    "n_frames": (10**9, "codes hold"),
    "scale": ([1.0] * 3, "scale has 3 entries"),
    "codes": (b"\x00" * 7, "codes hold 7 bytes"),
    "num_samples": (10**12, "does not fit"),
    "sample_rate": (10**9, "sample_rate 1000000000 is outside"),
    "duration_s": (1e9, "does not match num_samples"),
}


def test_tampered_compressed_rows_are_refused_one_by_one(checkpoint, tmp_path):
    m = load_model(checkpoint)
    Codec(m).check(_row(m))  # a consistent row passes
    nan_scale = {**_row(m), "scale": [float("nan")] + [1.0] * (m.vae.cfg.latent_dim - 1)}
    with pytest.raises(CodecError, match="non-finite"):
        Codec(m).check(nan_scale)
    rows = [_row(m)]
    for field, (value, message) in TAMPERED.items():
        bad = {**_row(m), field: value, "id": f"bad_{field}"}
        with pytest.raises(CodecError, match=message):
            Codec(m).check(bad)
        rows.append(bad)
    rows.append({**_row(m), "id": "../../escape"})  # a hostile id stays under the output root
    out = DecodeAudio(checkpoint, str(tmp_path / "decoded"), "wav")(pa.Table.from_pylist(rows))
    result = {r["id"]: r for r in out.to_pylist()}
    assert result["ok"]["error"] is None and os.path.exists(result["ok"]["path"])
    for field, (_, message) in TAMPERED.items():
        assert result[f"bad_{field}"]["path"] is None and message in result[f"bad_{field}"]["error"]
    assert result["../../escape"]["path"] == str(tmp_path / "decoded" / "escape.wav")
    assert sorted(os.listdir(tmp_path / "decoded")) == ["escape.wav", "ok.wav"]


@pytest.mark.slow
def test_no_credential_reaches_outputs_messages_or_logs(ray_session, s3, checkpoint, tmp_path, capfd):
    import ray
    import s3fs

    so = {**storage_options_for(s3["endpoint_url"]), "key": FAKE_KEY, "secret": FAKE_SECRET}  # moto takes any key
    fs = s3fs.S3FileSystem(**so)
    prefix = f"raydist-test/leak-{tmp_path.name}"
    for i in range(2):
        fs.put(write_tone(str(tmp_path / f"t{i}.wav"), freq=300 + 100 * i), f"{prefix}/corpus/t{i}.wav")
    fs.pipe(f"{prefix}/corpus/broken.wav", b"RIFF\x00\x00junk")
    fs.pipe(
        f"{prefix}/manifest.csv",
        b"id,uri\nt0,corpus/t0.wav\nt1,corpus/t1.wav\nbroken,corpus/broken.wav\nmissing,corpus/missing.wav\n",
    )
    summary = embed([f"s3://{prefix}/manifest.csv"], f"s3://{prefix}/emb", checkpoint, storage_options=so)
    assert (summary.ok, summary.failed) == (2, 2)  # error rows for the broken and the missing input
    with flaky_proxy(s3["endpoint_url"], fail_every=0, refuse_writes="/_staging/") as proxy:
        with pytest.raises(RunFailed) as failed:
            embed(
                [f"s3://{prefix}/corpus"],
                f"s3://{prefix}/emb2",
                checkpoint,
                storage_options={**so, "endpoint_url": proxy["endpoint_url"]},
            )

    texts = {"run failure": str(failed.value)}
    out = capfd.readouterr()
    texts["stdout"], texts["stderr"] = out.out, out.err
    for path in fs.find(f"{prefix}/emb") + fs.find(f"{prefix}/emb2"):  # Parquet (with metadata), manifests
        texts[path] = fs.cat(path).decode("latin-1")
    logs = os.path.join(ray._private.worker._global_node.get_session_dir_path(), "logs")
    for path in glob.glob(os.path.join(logs, "**", "*"), recursive=True):
        if os.path.isfile(path):
            texts[path] = open(path, "rb").read().decode("latin-1")
    assert any(p.endswith(".json") and "_runs" in p for p in texts) and len(texts) > 10
    leaks = [name for name, text in texts.items() if FAKE_KEY in text or FAKE_SECRET in text]
    assert not leaks, leaks
