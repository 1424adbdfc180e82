"""Ray Job entrypoint for training; the same options as `raydist train`.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train.py s3://bucket/corpus --out s3://bucket/runs/a --workers 4
"""

import sys

# every module the driver needs, imported before Ray puts work on other nodes: in a one-host test
# cluster the nodes share the job's working_dir and re-unpack it, and a late import can miss a file
import raydist.model.checkpoint  # noqa: F401
from raydist.cli import app

if __name__ == "__main__":
    app(args=["train", *sys.argv[1:]])
