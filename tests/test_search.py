"""Search a corpus by sound: the index over an embedding output, queries by id and by audio
(through the pipeline's own functions), filters, incremental indexing, S3, near-duplicates, and
the errors a user gets."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from kit import write_tone
from typer.testing import CliRunner

from raydist.cli import app
from raydist.config import FeatureConfig, LossConfig, ModelConfig, OutputConfig
from raydist.io.store import RunStore, read_table
from raydist.pipeline.embed import embed
from raydist.search.dedupe import dedupe
from raydist.search.index import build_index, read_meta
from raydist.search.query import Index, search_audio, search_ids

pytestmark = pytest.mark.slow
runner = CliRunner()
N = 24  # clips in the first run; the second adds EXTRA more


def manifest(root, rows: list[tuple[str, str, str]], name: str) -> str:
    path = os.path.join(root, name)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uri", "id", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Distinct tones (labels low/high by pitch), one exact copy of clip t003 under another id, and
    the same clip 6 dB quieter; embedded in two runs (several commits each)."""
    root = tmp_path_factory.mktemp("search")
    rows = []
    for i in range(N):
        freq = 150 + 37 * i
        path = write_tone(str(root / f"t{i:03d}.wav"), freq=freq, seconds=1.5 + 0.05 * i)
        rows.append((path, f"t{i:03d}", "low" if freq < 600 else "high"))
    x, sr = sf.read(rows[3][0], dtype="float32")
    sf.write(str(root / "copy.wav"), x, sr)
    sf.write(str(root / "quiet.wav"), x * 0.5, sr)
    extra = [(str(root / "copy.wav"), "copy-of-t003", "low"), (str(root / "quiet.wav"), "quiet-t003", "low")]
    return {
        "root": str(root),
        "rows": rows,
        "first": manifest(root, rows, "first.csv"),
        "extra": extra,
        "second": manifest(root, rows + extra, "second.csv"),
    }


@pytest.fixture(scope="module")
def emb(corpus, checkpoint, ray_session, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("search-emb") / "emb")
    embed([corpus["first"]], out, checkpoint, output=OutputConfig(commit_every=10), progress=False)
    return out


@pytest.fixture(scope="module")
def idx(emb, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("search-idx") / "idx")
    done = build_index(emb, out)
    assert done["added"] == N and done["rows"] == N
    return out


def test_every_clip_is_its_own_first_neighbour_by_id_and_by_audio(idx, corpus):
    ids = [r[1] for r in corpus["rows"]]
    for query, hits in zip(ids, search_ids(idx, ids, k=3)):
        assert hits.column("id")[0].as_py() == query and hits.column("distance")[0].as_py() < 1e-5
        assert hits.num_rows == 3 and hits.column("distance").to_pylist() == sorted(hits.column("distance").to_pylist())
    some = corpus["rows"][::6]
    for (path, cid, _), hits in zip(some, search_audio(idx, [r[0] for r in some], k=2)):
        assert hits.column("id")[0].as_py() == cid and hits.column("distance")[0].as_py() < 1e-4
        assert hits.column("uri")[0].as_py() == path


def test_a_where_filter_restricts_the_results(idx, corpus):
    low = {r[1] for r in corpus["rows"] if r[2] == "low"}
    (hits,) = search_ids(idx, ["t020"], k=N, where="label = 'low'")  # t020 itself is high
    assert set(hits.column("id").to_pylist()) == low
    (hits,) = search_ids(idx, ["t000"], k=N, where="label = 'low' and duration_s > 1.6")
    assert set(hits.column("id").to_pylist()) == {i for i in low if int(i[1:]) > 2}


def test_indexing_again_adds_exactly_the_rows_of_new_commits(emb, corpus, checkpoint, tmp_path):
    out = str(tmp_path / "idx")
    assert build_index(emb, out)["added"] == N
    before = len(RunStore(emb).log())
    embed([corpus["second"]], emb, checkpoint, progress=False)  # the two new inputs
    after = len(RunStore(emb).log())
    again = build_index(emb, out)
    assert again["added"] == 2 and again["commits_added"] == after - before >= 1 and again["rows"] == N + 2
    assert build_index(emb, out)["added"] == 0
    ids = Index(out).table.to_arrow().column("id").to_pylist()
    assert sorted(ids) == sorted(read_table(emb, "clips", columns=["id"]).column("id").to_pylist())
    # a build cut short after adding a commit's rows, before recording it, adds them once on the next
    meta = read_meta(out)
    last = meta.commits.pop()
    meta.rows -= Index(out).table.count_rows(f"commit = {last}")
    from raydist.search.index import write_meta

    write_meta(out, meta)
    assert build_index(emb, out)["added"] == Index(out).table.count_rows(f"commit = {last}") >= 1
    assert (
        sorted(Index(out).table.to_arrow().column("id").to_pylist()) == sorted(ids) and last in read_meta(out).commits
    )
    groups = dedupe(out, threshold=1e-4).to_pylist()
    assert {r["id"] for r in groups} == {"t003", "copy-of-t003"} and {r["group"] for r in groups} == {0}
    near = {r["id"] for r in dedupe(out, threshold=0.05).to_pylist()}
    assert {"t003", "copy-of-t003", "quiet-t003"} <= near, near


def test_segments_are_indexed_with_their_times(emb, tmp_path):
    out = str(tmp_path / "seg-idx")
    done = build_index(emb, out, level="segments")
    segments = read_table(emb, "segments")
    assert done["rows"] == segments.num_rows
    (hits,) = search_ids(out, ["t005#0"], k=1)
    first = segments.filter(segments.column("id").to_numpy(zero_copy_only=False) == "t005").to_pylist()[0]
    assert hits.to_pylist()[0]["id"] == "t005" and hits.to_pylist()[0]["start_s"] == pytest.approx(first["start_s"])


def test_an_index_on_s3_round_trips(emb, s3):
    out = "s3://raydist-test/search/idx"
    assert build_index(emb, out, storage_options=s3)["rows"] >= N
    (hits,) = search_ids(out, ["t007"], k=2, storage_options=s3)
    assert hits.column("id")[0].as_py() == "t007" and read_meta(out, s3).level == "clips"


def test_the_cli_searches_and_prints_json(idx, corpus):
    result = runner.invoke(app, ["search", idx, "--id", "t010", "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    (answer,) = json.loads(result.output)
    assert answer["query"] == "t010" and [h["id"] for h in answer["hits"]][0] == "t010" and len(answer["hits"]) == 4
    table = runner.invoke(app, ["search", idx, "--audio", corpus["rows"][1][0], "-k", "2"])
    assert table.exit_code == 0 and "rank" in table.output and "t001" in table.output.splitlines()[2]


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory) -> str:
    from raydist.model.checkpoint import save_checkpoint
    from raydist.model.vae import AudioVAE

    torch.manual_seed(1)
    d = str(tmp_path_factory.mktemp("other-ckpt"))
    save_checkpoint(d, AudioVAE(ModelConfig(hidden=32)), FeatureConfig(), LossConfig(), step=0, epoch=0)
    return os.path.join(d, "model.pt")


def test_bad_queries_fail_with_one_clear_line(idx, corpus, other_checkpoint, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all" * 10)
    wav = corpus["rows"][0][0]
    cases = [
        (["--audio", wav, "--model", other_checkpoint], 1, "another model"),
        (["--id", "no-such-clip"], 1, "is not in the index"),
        (["--audio", str(junk)], 1, "cannot embed"),
        (["--id", "t001", "--where", "labl = 'low'"], 2, "is not a valid filter"),
        (["--id", "t001", "--where", "label = = 'low'"], 2, "is not a valid filter"),
        ([], 2, "give --audio"),
        (["--id", "t001", "--audio", wav], 2, "not both"),
        (["--audio", str(tmp_path / "missing.wav")], 2, "does not exist"),
    ]
    for args, code, words in cases:
        result = runner.invoke(app, ["search", idx, *args])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == code and words in result.output, (args, result.output)
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.output)
    missing = runner.invoke(app, ["search", str(tmp_path / "nothing"), "--id", "x"])
    assert missing.exit_code == 1 and "is not a raydist index" in missing.output


def test_dedupe_writes_groups(idx, tmp_path):
    result = runner.invoke(app, ["dedupe", idx, "--out", str(tmp_path / "d"), "--threshold", "0.0001"])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "d" / "duplicates.parquet")
    assert table.column_names == ["group", "id", "distance"] and table.num_rows == 0  # the first run has no copies
    assert np.all(np.asarray(table.column("distance")) >= 0)


def test_a_compacted_output_is_indexed_once_per_row(ray_session, emb, checkpoint, tmp_path):
    """A compaction commit holds rows the index has: an update adds only those of commits it
    missed (here one made just before the compaction)."""
    import shutil

    from raydist.pipeline.compact import compact

    copy, out = str(tmp_path / "emb"), str(tmp_path / "idx")
    shutil.copytree(emb, copy)
    base = read_table(copy, "clips", columns=["id"]).num_rows
    assert build_index(copy, out)["added"] == base
    os.makedirs(tmp_path / "new")
    write_tone(str(tmp_path / "new" / "late.wav"), freq=523)
    embed([str(tmp_path / "new")], copy, checkpoint, progress=False)  # a commit the index has not seen
    assert compact(copy, target_mb=64).files_after >= 1
    again = build_index(copy, out)
    assert again["added"] == 1 and again["rows"] == base + 1
    ids = Index(out).table.to_arrow().column("id").to_pylist()
    assert sorted(ids) == sorted(read_table(copy, "clips", columns=["id"]).column("id").to_pylist())
    assert build_index(copy, str(tmp_path / "idx2"))["added"] == base + 1  # built after it: each row once
