"""Input resolution: folders, globs, manifests (CSV/Parquet), stable ids, clear errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kit import write_tone

from raydist.io.inputs import InputError, resolve_inputs


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


@pytest.mark.parametrize(
    "column, message",
    [
        (pa.array([1, 2], pa.int64()), r"row 1: uri is empty or not text \(1\)"),
        (pa.array([["a.wav"], ["b.wav"]]), r"row 1: uri is empty or not text \(\['a.wav'\]\)"),
        (pa.array(["a.wav", None]), "row 2: uri is empty"),
    ],
)
def test_parquet_manifest_with_wrong_types_names_the_row(tmp_path, column, message):
    pq.write_table(pa.table({"uri": column}), str(tmp_path / "m.parquet"))
    with pytest.raises(InputError, match=message):
        resolve_inputs([str(tmp_path / "m.parquet")])


def test_manifest_ids_labels_of_other_types_and_null_ids(tmp_path):
    pq.write_table(
        pa.table({"uri": ["a.wav", "b.wav"], "id": [7, 8], "label": [1.5, None]}), str(tmp_path / "m.parquet")
    )
    t = resolve_inputs([str(tmp_path / "m.parquet")]).table
    assert t.column("id").to_pylist() == ["7", "8"] and t.column("label").to_pylist() == ["1.5", None]
    pq.write_table(pa.table({"uri": ["a.wav", "b.wav"], "id": ["x", None]}), str(tmp_path / "n.parquet"))
    with pytest.raises(InputError, match=r"input row 2 \(.*b.wav\) has an empty id"):
        resolve_inputs([str(tmp_path / "n.parquet")])


def test_malformed_csv_and_unreadable_uris(tmp_path):
    (tmp_path / "m.csv").write_text("uri,label\na.wav,x\nb.wav,y,extra\n")
    with pytest.raises(InputError, match="cannot read manifest .*Expected 2 columns, got 3"):
        resolve_inputs([str(tmp_path / "m.csv")])
    # an unreadable URI is not a manifest error: the pipeline gives that input a read error row
    from raydist.audio import ReadError, decode

    (tmp_path / "u.csv").write_text("id,uri\nweird,nosuchscheme://bucket/a.wav\nmissing,gone.wav\n")
    table = resolve_inputs([str(tmp_path / "u.csv")]).table
    for uri in table.column("uri").to_pylist():
        with pytest.raises(ReadError, match="cannot open"):
            decode(uri, 16000)
