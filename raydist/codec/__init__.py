"""The latent codec, in one place. `Codec` (in `codec.py`) is the object users and the pipeline
call: clip latents -> a compressed row, a row checked against the model, a row -> audio at the
source's rate and length. Its parts:

- `format`: the on-disk row (int8 codes + per-dimension float16 scales + what decoding needs),
  quantise/dequantise, the row checks, and the byte arithmetic (payload, 16-bit PCM) that the
  writers and the bitrate report share. numpy only: the Parquet writers import it without torch.
- `inversion`: latents -> the VAE's log-mel -> waveform: the checkpoint's learned vocoder (batched), or
  for checkpoints without one NNLS mel inversion + Griffin-Lim.
- `generate`: sample latents from the prior, or interpolate two clips, and decode them.

No Ray here: `raydist.pipeline.compress` runs the codec over a corpus."""
