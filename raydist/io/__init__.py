"""Storage: where raydist reads and writes. `inputs` turns INPUT arguments (folders, globs,
s3:// prefixes, manifests) into one table of inputs; `store` is the exactly-once output
directory (staging, run manifests, commit, recovery, readers); `schema` defines every output
table once; `fs` holds the fsspec helpers they share. numpy, pyarrow and fsspec only: no torch,
no Ray, so writers and plain readers stay light."""
