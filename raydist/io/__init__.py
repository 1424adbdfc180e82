"""Storage: where raydist reads and writes. `inputs` turns INPUT arguments (folders, globs,
s3:// prefixes, manifests) into one table of inputs; `store` is the exactly-once output
directory (staging, the commit log, incremental commits, recovery, readers); `runs` the runs'
records and heartbeats (which run is alive); `schema` defines every output table once; `fs`
holds the fsspec helpers they share (atomic replace, exclusive create). numpy, pyarrow and fsspec only: no torch,
no Ray, so writers and plain readers stay light."""
