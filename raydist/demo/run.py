"""`raydist demo`: the main job on an embedded default. Writes the built-in corpus, trains the VAE
with Ray Train on a local Ray, embeds the corpus with Ray Data, compresses and decodes it back, and
reports where everything is."""

from __future__ import annotations

import os
import shutil
import time

from raydist.cluster.session import init_ray
from raydist.config import TrainConfig
from raydist.demo.corpus import write_corpus

MARKER = ".raydist-demo"
SAMPLE_QUERY = (
    "import pyarrow.dataset as ds; t = ds.dataset('{path}').to_table(); "
    "print(t.group_by('label').aggregate([('id', 'count'), ('n_segments', 'mean')]))"
)


def _sample_query(path: str) -> str:
    import pyarrow.dataset as ds

    per_label = ds.dataset(path).to_table().group_by("label").aggregate([("id", "count"), ("n_segments", "mean")])
    return "\n".join(
        f"  {r['label']:8s} clips={r['id_count']:4d} mean segments={r['n_segments_mean']:.2f}"
        for r in per_label.sort_by("label").to_pylist()
    )


def _prepare(out: str) -> None:
    """The demo owns `out`: it may replace an earlier demo there, never other data."""
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise ValueError(f"{out} is not empty and holds no earlier demo; pick another --out")
        print(f"raydist demo: replacing the earlier demo in {out}")
        shutil.rmtree(out)
    os.makedirs(out)
    open(os.path.join(out, MARKER), "w").close()


def run_demo(out: str, clips: int = 200, epochs: int = 15, workers: int = 0) -> dict[str, str]:
    from raydist.eval import plots
    from raydist.eval.probe import run_probe
    from raydist.eval.quality import evaluate_pairs
    from raydist.eval.report import write_report
    from raydist.eval.segments import run_segment_eval
    from raydist.pipeline.compress import codec_report, compress
    from raydist.pipeline.decompress import decompress
    from raydist.pipeline.embed import embed
    from raydist.pipeline.runner import versions
    from raydist.train.trainer import train

    start = time.time()
    _prepare(out)
    manifest = write_corpus(os.path.join(out, "corpus"), n_clips=clips)
    print(f"raydist demo: wrote {clips} clips and {manifest}")
    init_ray(num_cpus=max(2, os.cpu_count() or 2))
    result = train([manifest], os.path.join(out, "train"), TrainConfig(workers=workers, epochs=epochs))
    print(f"raydist demo: {result.summary()}")
    print(f"raydist demo: per-epoch metrics in {os.path.join(out, 'train', 'metrics.json')}")
    emb_dir = os.path.join(out, "embeddings")
    summary = embed([manifest], emb_dir, result.model_uri)
    print(f"raydist demo: {summary.line()}")
    print(f"raydist demo: Parquet tables under {emb_dir}/{{frames,clips,events,segments,errors}}; a sample query:")
    print(f"  {SAMPLE_QUERY.format(path=os.path.join(emb_dir, 'clips'))}")
    print(_sample_query(os.path.join(emb_dir, "clips")))
    codes_dir, decoded_dir = os.path.join(out, "compressed"), os.path.join(out, "decoded")
    compress([manifest], codes_dir, result.model_uri, progress=False)
    report = codec_report(codes_dir)
    decompress(codes_dir, result.model_uri, decoded_dir)
    quality = evaluate_pairs([manifest], [decoded_dir])["mean"]
    print(
        f"raydist demo: compressed to {report['payload_kbps']:.2f} kbps latent payload ({report['file_kbps']:.2f} kbps "
        f"on disk, {report['ratio_vs_pcm16']:.0f}x smaller than 16-bit PCM); decoded audio in {decoded_dir}: "
        f"log-mel L1 {quality['logmel_l1']:.3f}, MR-STFT {quality['mrstft']:.3f}, SI-SDR {quality['si_sdr']:.1f} dB"
    )
    report_dir = os.path.join(out, "report")
    probe = run_probe(emb_dir, report_dir, baseline=True)
    segs = run_segment_eval(emb_dir, os.path.join(out, "corpus", "segments.csv"), report_dir)
    curves = plots.training_curves(result.history, os.path.join(report_dir, "training.png"))
    print(
        f"raydist demo: linear probe accuracy: VAE {probe['vae']['accuracy']:.3f}, log-mel {probe['logmel']['accuracy']:.3f}, "
        f"MFCC {probe['mfcc']['accuracy']:.3f}; boundary F@0.5s: events {segs['events']['0.5s']['f_measure']:.3f}, "
        f"log-mel novelty {segs['logmel_novelty']['0.5s']['f_measure']:.3f}"
    )
    path = write_report(
        os.path.join(out, "report.md"),
        {
            "training": {"first": result.history[0], "last": result.history[-1], "pictures": [curves]},
            "probe": probe,
            "segmentation": segs,
            "compression": {**report, **quality},
        },
        header={
            "corpus": manifest,
            "clips": clips,
            "model": result.model_uri,
            "training": {"epochs": epochs, "workers": workers, "seconds": round(result.seconds, 1)},
            "versions": versions(),
        },
    )
    print(f"raydist demo: report in {path} and, with its pictures inline, {path[:-3]}.html")
    print(f"raydist demo: done in {time.time() - start:.0f} s")
    return {"manifest": manifest, "model": result.model_uri, "embeddings": emb_dir, "decoded": decoded_dir}
