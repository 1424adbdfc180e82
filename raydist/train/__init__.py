"""Training the VAE and its vocoder. `step` holds the training steps (plain torch: the VAE's,
with `views` making the augmented crops of its optional invariance term, and the vocoder's on a
frozen VAE); `loop` runs them on every Ray Train worker (DDP, validation, checkpoints, resume);
`trainer` is the driver (inputs -> Ray Data windows -> TorchTrainer -> out/model.pt); `data` cuts
log-mel or waveform windows; `local` runs the same steps in one process without Ray, for small
corpora, tests and benchmarks."""
