"""raydist's benchmarks: one entry point, one JSON result per benchmark, docs rendered from them.

    python -m bench                      # list the benchmarks
    python -m bench quality --seeds 0 1 2
    python -m bench render               # docs/benchmarks.md and the README's figures from bench/results/

Each benchmark module has `main(argv) -> dict` (runs, prints progress, returns its result),
`render(result) -> str` (its tables, as Markdown) and, where it gives a headline figure,
`headline(result) -> list[(what, figure)]`. `python -m bench NAME` writes the result with the
command, date, machine and commit to bench/results/NAME.json (`BENCH_RESULTS=DIR` writes
elsewhere, for a trial run).
"""

# name -> (module under bench/, one line: what it measures)
BENCHMARKS = {
    "quality": ("quality", "probes and boundary F on the demo corpus (a regression check, clips trained on)"),
    "features": ("features", "clip features on voices and programs the model never saw: word, speaker, family"),
    "segments": ("segments", "source segments on two corpora built differently: tuned on one, scored on the other"),
    "encoders": ("encoders", "other teams' HEAR-API encoders (CREPE, naive) through the pipeline, beside the VAE"),
    "search": ("search", "search by sound: retrieval P@10 and mAP, near-duplicates, the index at 10^6 vectors"),
    "codec": ("codec", "the latent codec (vocoder, Griffin-Lim) beside Opus on held-out clips"),
    "embed": ("embed", "embedding throughput: the Ray Data pipeline against a fused loop on the same cores"),
    "peers": ("peers", "`raydist embed` against a multiprocessing script and datasets.map, as whole commands"),
    "train": ("train", "training throughput: `raydist train` against a plain loop, as whole commands"),
    "store": ("store", "what incremental commits cost writers, and what many commits cost readers"),
    "scale": ("scale", "cluster scale simulated: commit cost against its size, a rerun's start at 10^8 committed ids"),
    "serve": (
        "serve",
        "`raydist serve` on localhost: latency, throughput against the pipeline, bad bodies, a replica killed",
    ),
    "stress": ("stress", "two runs on one output, and signals mid-run, repeated: rows duplicated or lost"),
    "codec-gpu": ("codec_gpu", "the GPU training run behind the codec's base/44-dim figures (device only)"),
}
