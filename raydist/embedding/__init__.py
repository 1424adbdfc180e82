"""From a waveform to everything raydist writes about it, no Ray:

- `encode`: waveforms -> latent sequences (batched by length; long audio in chunks that equal
  whole-file encoding), latent frame times. Needs torch and a loaded model.
- `segmentation`: novelty and peak picking (events), source boundaries by novelty over active
  frames and Ward merging (segments), boundary times. numpy only.
- `features`: one clip's latents -> its clip-level embedding, activity, events and source
  segments (the rows of clips/, events/ and segments/). numpy only.

The HEAR API, the pipeline's encoder actors, the codec and the benchmarks all call these."""
