"""Training the VAE. `step` is the one training step (plain torch; `views`
makes the augmented crops of its optional invariance term); `loop` runs it on every Ray
Train worker (DDP, validation, checkpoints, resume); `trainer` is the driver (inputs -> Ray Data
windows -> TorchTrainer -> out/model.pt); `data` cuts log-mel windows; `local` runs the same
step in one process without Ray, for small corpora, tests and benchmarks."""
