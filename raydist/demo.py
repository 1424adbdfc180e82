"""`raydist demo`: the main job on an embedded default. Writes the built-in corpus, trains the VAE
with Ray Train on a local Ray, and reports where everything is."""

from __future__ import annotations

import os
import shutil
import time

from raydist.config import TrainConfig
from raydist.corpus import write_corpus
from raydist.session import init_ray

MARKER = ".raydist-demo"


def _prepare(out: str) -> None:
    """The demo owns `out`: it may replace an earlier demo there, never other data."""
    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise ValueError(f"{out} is not empty and holds no earlier demo; pick another --out")
        print(f"raydist demo: replacing the earlier demo in {out}")
        shutil.rmtree(out)
    os.makedirs(out)
    open(os.path.join(out, MARKER), "w").close()


def run_demo(out: str, clips: int = 200, epochs: int = 15, workers: int = 2) -> dict[str, str]:
    from raydist.train.trainer import train

    start = time.time()
    _prepare(out)
    manifest = write_corpus(os.path.join(out, "corpus"), n_clips=clips)
    print(f"raydist demo: wrote {clips} clips and {manifest}")
    init_ray(num_cpus=max(2, os.cpu_count() or 2))
    result = train([manifest], os.path.join(out, "train"), TrainConfig(workers=workers, epochs=epochs))
    print(f"raydist demo: {result.summary()}")
    print(f"raydist demo: per-epoch metrics in {os.path.join(out, 'train', 'metrics.json')}")
    print(f"raydist demo: done in {time.time() - start:.0f} s")
    return {"manifest": manifest, "model": result.model_uri}
