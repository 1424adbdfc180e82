"""Corpora the benchmarks build for themselves (nothing is downloaded):

- `tones`: synthetic tones in noise and an untrained default-size VAE, for throughput benchmarks
  (`embed`, `peers`, `store`, `stress`), where what is measured is work per second, not quality;
- `labelled`: words spoken by espeak-ng voices and phrases played by General MIDI programs, in two
  disjoint splits, TUNE (settings were chosen on it) and HELD (the headline figures), plus extra
  speech for the codec (`features`, `codec`);
- `joined`: concatenations of those sources with no gap, truth at the joins (`segments`).

`labelled` and `joined` need `apt-get install espeak-ng fluidsynth fluid-soundfont-gm`.
"""
