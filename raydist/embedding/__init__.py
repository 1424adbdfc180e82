"""From a waveform to everything raydist writes about it, no Ray:

- `encode`: waveforms -> latent sequences (batched by length; long audio in chunks that equal
  whole-file encoding), latent frame times. Needs torch and a loaded model.
- `segmentation`: novelty over the latents plus an activity channel, peak picking, boundary times.
- `features`: one clip's latents -> its clip-level embedding, activity and segments (the rows of
  clips/ and segments/). numpy only.

The HEAR API, the pipeline's encoder actors, the codec and the benchmarks all call these."""
