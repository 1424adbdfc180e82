"""Ray Job entrypoint for embedding; the same options as `raydist embed`.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/embed.py s3://bucket/corpus --model s3://bucket/runs/a/model.pt --out s3://bucket/emb --address auto
"""

import sys

# every module the driver needs, imported before Ray puts work on other nodes: in a one-host test
# cluster the nodes share the job's working_dir and re-unpack it, and a late import can miss a file
import raydist.model.checkpoint  # noqa: F401
from raydist.cli import app

if __name__ == "__main__":
    app(args=["embed", *sys.argv[1:]])
