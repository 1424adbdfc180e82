"""Judging what raydist makes, the way users do, no Ray: `probe` (linear and MLP probes on clip
embeddings with grouped cross-validation, against log-mel and MFCC baselines), `boundaries`
(boundary precision/recall/F), `segments` (segment-eval: detected boundaries against reference
ones and against novelty on raw log-mel), `quality` (codec measures: log-mel L1, multi-resolution
STFT, SI-SDR), `plots` (pictures), `report` (the markdown report), and `settings` (a run's
feature, model and segmentation settings, read from its manifests: an evaluation never re-creates
defaults)."""
