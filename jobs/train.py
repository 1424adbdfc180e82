"""Ray Job entrypoint for training; the same options as `raydist train`.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/train.py s3://bucket/corpus --out s3://bucket/runs/a --workers 4
"""

import sys

from raydist.cli import app

if __name__ == "__main__":
    app(args=["train", *sys.argv[1:]])
