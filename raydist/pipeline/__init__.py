"""Ray Data over a corpus. One generic runner (`runner`: list inputs, skip what is committed,
decode tasks -> a model actor pool -> Parquet writer tasks -> one atomic commit), and the specs
it runs: `embed` (latents, clip features, segments) and `compress` (codec rows), each holding
its actor and its table split. `decode` is the stage they share; `write` the writer tasks (no
torch); `decompress` runs the codec's decoder over a compressed set on an actor pool."""
