"""`raydist demo`: the built-in corpus (`corpus`: synthetic clips with labels and segment
boundaries, written as real files with a manifest) and the end-to-end run over it (`run`: train,
embed, compress, decompress, probe, segment-eval, report) on an embedded local Ray."""
