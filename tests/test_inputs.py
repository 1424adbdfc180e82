"""Input resolution: folders, globs, manifests (CSV/Parquet), stable ids, clear errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raydist.inputs import InputError, resolve_inputs
from raydist.testing import write_tone


def test_folder_ids_are_relative_paths_and_non_audio_is_counted(tmp_path):
    write_tone(str(tmp_path / "x" / "a.wav"))
    write_tone(str(tmp_path / "b.flac"))
    (tmp_path / "notes.txt").write_text("hi")
    got = resolve_inputs([str(tmp_path)])
    assert sorted(got.table.column("id").to_pylist()) == ["b.flac", "x/a.wav"]
    assert got.skipped == {".txt": 1}


def test_csv_manifest_relative_uris_labels_and_splits(tmp_path):
    write_tone(str(tmp_path / "audio" / "a.wav"))
    (tmp_path / "m.csv").write_text("id,uri,label,split\nA,audio/a.wav,dog,train\nB,/abs/b.wav,,test\n")
    rows = resolve_inputs([str(tmp_path / "m.csv")]).table.to_pylist()
    assert rows[0] == {"id": "A", "uri": str(tmp_path / "audio" / "a.wav"), "label": "dog", "split": "train"}
    assert rows[1]["label"] is None and rows[1]["uri"] == "/abs/b.wav"


def test_parquet_manifest_without_ids_gets_ids_from_uris(tmp_path):
    pq.write_table(pa.table({"uri": ["/data/x.wav", "s3://bkt/y.flac"]}), str(tmp_path / "m.parquet"))
    ids = resolve_inputs([str(tmp_path / "m.parquet")]).table.column("id").to_pylist()
    assert ids == ["data/x.wav", "bkt/y.flac"]


@pytest.mark.parametrize(
    "csv, message",
    [
        ("path,label\na.wav,x\n", "no 'uri' column"),
        ("id,uri\nA,a.wav\nA,b.wav\n", "duplicate input id 'A'"),
        ("id,uri\nA,a.wav\nB,\n", "row 2: uri is empty"),
    ],
)
def test_bad_manifests_name_the_problem(tmp_path, csv, message):
    (tmp_path / "m.csv").write_text(csv)
    with pytest.raises(InputError, match=message):
        resolve_inputs([str(tmp_path / "m.csv")])


def test_missing_input_and_no_input(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        resolve_inputs([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="no INPUT"):
        resolve_inputs([])
