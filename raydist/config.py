"""Configuration dataclasses, one per concern. Every default carries a comment.

Configs are saved as JSON-able dicts inside every checkpoint and in Parquet metadata, so the
encoder always sees the features it was trained on. `from_dict` ignores nothing silently:
unknown keys raise, so a typo or a foreign config is caught early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Self, TypeVar

T = TypeVar("T")


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config dataclass from a dict, refusing unknown keys and wrong types.

    Every config field has a default, so the default instance gives each field's type.
    """
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be a dict, got {type(data).__name__}")
    defaults = cls()
    allowed = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {allowed}")
    values = {}
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and type(value) is int:
            value = float(value)
        if type(value) is not expected:
            raise TypeError(f"{cls.__name__}.{key} must be {expected.__name__}, got {value!r}")
        values[key] = value
    return cls(**values)


class Config:
    """JSON round trip shared by every config: to_dict, and from_dict that refuses unknown keys."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return config_from_dict(cls, data)


@dataclass(frozen=True)
class FeatureConfig(Config):
    """The log-mel front end. Saved with every checkpoint."""

    sample_rate: int = 16000  # model rate; every input is resampled to it
    n_fft: int = 512  # STFT size (32 ms at 16 kHz)
    win_length: int = 400  # analysis window (25 ms)
    hop_length: int = 160  # 10 ms hop -> 100 mel frames per second
    n_mels: int = 64  # mel bands
    f_min: float = 20.0  # lowest mel band edge, Hz
    f_max: float = 8000.0  # highest mel band edge, Hz (<= sample_rate / 2)
    log_floor: float = 1e-5  # log(max(mel, floor)): silence maps to log(1e-5) = -11.5

    def __post_init__(self) -> None:
        if self.f_max > self.sample_rate / 2:
            raise ValueError(f"f_max={self.f_max} is above Nyquist ({self.sample_rate / 2})")
        if not 0 <= self.f_min < self.f_max:
            raise ValueError(f"need 0 <= f_min < f_max, got f_min={self.f_min}, f_max={self.f_max}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} exceeds n_fft={self.n_fft}")

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


@dataclass(frozen=True)
class ModelConfig(Config):
    """The VAE's shape. Saved with every checkpoint."""

    n_mels: int = 64  # input channels; must equal FeatureConfig.n_mels
    latent_dim: int = 32  # latent channels per latent frame
    hidden: int = 128  # conv channels
    n_down: int = 3  # stride-2 stages: 100 mel fps / 2**3 = 12.5 latent fps
    res_blocks: int = 1  # residual blocks per stage
    input_mean: float = -5.0  # log-mel normalisation: (x - mean) / std before the encoder
    input_std: float = 4.0
    proj_dim: int = 64  # output of the projection head the invariance term compares (0 = no head)
    preset: str = "small"  # the preset these values started from (a record; fields may be overridden)

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.hidden < 1 or self.n_down < 0 or self.proj_dim < 0:
            raise ValueError(f"invalid model shape: {self}")
        if self.preset not in MODEL_PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {sorted(MODEL_PRESETS)}")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A preset's shape with any field overridden: ModelConfig.from_preset("base", latent_dim=48).
        An unknown name is refused by __post_init__'s preset check."""
        return cls(**{**MODEL_PRESETS.get(name, {}), **overrides, "preset": name})

    @property
    def downsample(self) -> int:
        return 2**self.n_down


# Model shapes by name. small: the demo, CI and a 2-core laptop; base: what a GPU node trains.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "small": {"hidden": 128, "latent_dim": 32, "res_blocks": 1},
    "base": {"hidden": 256, "latent_dim": 64, "res_blocks": 2},
}


@dataclass(frozen=True)
class VocoderConfig(Config):
    """The learned waveform decoder (`raydist.model.vocoder`). Saved in the checkpoint beside the VAE."""

    dim: int = 192  # ConvNeXt channels
    layers: int = 6  # ConvNeXt blocks
    n_fft: int = 640  # inverse-STFT size (4 x the 160-sample hop, as in Vocos)
    use_latents: bool = True  # also condition on the (dequantised) latents, not only the decoded log-mel
    segment_s: float = 1.0  # training crop, seconds
    mel_weight: float = 1.0  # weight of the log-mel L1 term
    stft_weight: float = 1.0  # weight of the multi-resolution STFT term
    adversarial: float = 0.0  # weight of the hinge GAN term (0 = no discriminator); feature matching gets 2x

    def __post_init__(self) -> None:
        if (
            self.dim < 1
            or self.layers < 1
            or self.n_fft < 2
            or self.n_fft % 2
            or self.segment_s <= 0
            or self.adversarial < 0
        ):
            raise ValueError(f"invalid vocoder shape: {self}")

    def same_shape(self, other: "VocoderConfig") -> bool:
        """Whether weights of one fit the other (the loss settings may differ)."""
        return all(getattr(self, k) == getattr(other, k) for k in ("dim", "layers", "n_fft", "use_latents"))

    @classmethod
    def from_preset(cls, name: str) -> "VocoderConfig":
        """The vocoder shape that goes with a VAE preset (the VAE's `ModelConfig.preset`)."""
        return cls(**VOCODER_PRESETS.get(name, {}))


# Vocoder shapes by the VAE preset they decode: small for CPUs, base (Vocos' width) for GPU nodes.
VOCODER_PRESETS: dict[str, dict[str, Any]] = {
    "small": {"dim": 192, "layers": 6},
    "base": {"dim": 384, "layers": 8},
}


@dataclass(frozen=True)
class LossConfig(Config):
    """The training objective: the ELBO (reconstruction + beta * KL) plus an invariance term.
    Loss terms are named; weights are keyed by the same names.

    The invariance term (`contrast`, off by default: it measured no better than the ELBO alone on
    the feature benchmark, README) is InfoNCE between the projected clip embeddings (mean and
    std over time of the latent means) of two augmented crops of each training window, against
    the other windows of the batch (COLA/SimCLR style): reconstruction alone keeps what is needed
    to redraw the spectrogram, not what tells sources apart."""

    beta: float = 0.05  # weight of KL(q(z|x) || N(0, I)) after warm-up
    kl_warmup_steps: int = 200  # beta ramps linearly from 0 over this many steps
    free_bits: float = 0.05  # nats per latent dim and frame below which KL is not penalised
    contrast: float = 0.0  # weight of the invariance term (0 = the plain ELBO: 1.0 measured no better, README)
    temperature: float = 0.1  # InfoNCE temperature on cosine similarities
    view_s: float = 1.0  # length of each augmented crop, seconds

    def __post_init__(self) -> None:
        if self.contrast < 0 or self.temperature <= 0 or self.view_s <= 0:
            raise ValueError(f"contrast must be >= 0, temperature and view_s > 0: {self}")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Ray Train settings. Saved in the run's train_config.json."""

    workers: int = 0  # Ray Train workers (DDP ranks); 0: one per GPU, or on CPUs one per node
    use_gpu: str = "auto"  # auto | yes | no: auto uses GPUs when the cluster has them
    cpus_per_worker: float = 0.0  # CPUs (torch threads) per worker; 0: a node's for workers=0, else 1
    gpus_per_worker: float = 1.0  # GPUs each training worker reserves when GPUs are used
    epochs: int = 20  # passes over the training windows
    batch_size: int = 64  # windows per worker per step
    lr: float = 1e-3  # Adam learning rate
    grad_clip: float = 5.0  # max gradient norm
    window_s: float = 2.0  # training window length; shorter clips are padded with silence
    window_hop_s: float = 1.0  # hop between windows cut from one clip
    val_fraction: float = 0.1  # share of clips (by id hash) held out for validation
    checkpoint_every: int = 100  # steps between checkpoints (and one after the last epoch)
    max_failures: int = 2  # worker-group restarts Ray Train attempts from the last checkpoint
    shuffle_buffer: int = 256  # local shuffle buffer, in windows (first epoch; later ones permute kept windows)
    keep_mb: int = 1024  # a worker keeps its windows in memory after the first epoch if they fit (0: stream each epoch)
    seed: int = 0  # model initialisation seed
    placement: str = "PACK"  # PACK | SPREAD: SPREAD puts workers on different nodes

    @property
    def global_batch(self) -> int:
        """Windows per step over all workers (workers=0, one per node, counts as one: a laptop)."""
        return max(1, self.workers) * self.batch_size

    def __post_init__(self) -> None:
        if self.placement not in ("PACK", "SPREAD"):
            raise ValueError(f"placement must be PACK or SPREAD, got {self.placement!r}")
        if self.use_gpu not in ("auto", "yes", "no"):
            raise ValueError(f"use_gpu must be auto, yes or no, got {self.use_gpu!r}")
        if self.workers < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"workers must be >= 0, epochs and batch_size >= 1: {self}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if min(self.lr, self.grad_clip, self.window_s, self.window_hop_s) <= 0 or self.cpus_per_worker < 0:
            raise ValueError(f"lr, grad_clip, window_s and window_hop_s must be > 0, cpus_per_worker >= 0: {self}")
        if (
            self.checkpoint_every < 1
            or self.max_failures < -1
            or self.gpus_per_worker < 0
            or min(self.shuffle_buffer, self.keep_mb) < 0
        ):
            raise ValueError(
                f"checkpoint_every must be >= 1, max_failures >= -1 (-1: no limit), gpus_per_worker, "
                f"shuffle_buffer and keep_mb >= 0: {self}"
            )


@dataclass(frozen=True)
class ResourceConfig(Config):
    """How a Ray Data run (embed, compress, decompress) uses the cluster. Saved in each run manifest."""

    batch_size: int = 32  # clips per encoder call (equal-length clips share a forward pass)
    actors: int = 0  # encoder actors; 0 = one per GPU, or one per CPU on CPU-only clusters
    cpus_per_actor: float = 0.5  # fractional so decode tasks always find a CPU (no deadlock)
    gpus_per_actor: float = 0.0  # 0 = auto: 1 when the cluster has GPUs
    decode_batch: int = 32  # files per decode task (fewer, larger tasks keep the encoders fed)
    decode_cpus: float = 0.5  # CPUs per decode task (0.5 measured 25% faster than 1 on 2 cores)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.decode_batch < 1:
            raise ValueError(f"batch_size and decode_batch must be >= 1: {self}")
        if self.actors < 0 or self.cpus_per_actor <= 0 or self.gpus_per_actor < 0 or self.decode_cpus <= 0:
            raise ValueError(f"actors and gpus_per_actor must be >= 0, CPUs per actor and task > 0: {self}")


@dataclass(frozen=True)
class OutputConfig(Config):
    """What an embedding run writes. Saved in each run manifest."""

    rows_per_file: int = 500  # clips per staged part; a commit merges its parts into one file per table
    dtype: str = "float16"  # float16 | float32 for frame-level latents
    keep_logvar: bool = False  # also write per-frame latent log-variance
    commit_every: int = 50_000  # commit after this many inputs ...
    commit_seconds: float = 60.0  # ... or this many seconds, whichever comes first
    lease_s: float = 60.0  # a run on another host whose heartbeat is older than this is dead

    def __post_init__(self) -> None:
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {self.dtype!r}")
        if self.rows_per_file < 1 or self.commit_every < 1:
            raise ValueError(f"rows_per_file and commit_every must be >= 1: {self}")
        if self.commit_seconds <= 0 or self.lease_s <= 0:
            raise ValueError(f"commit_seconds and lease_s must be > 0: {self}")


@dataclass(frozen=True)
class SegmentConfig(Config):
    """Two levels of segmentation of the latent sequence. Saved in each run manifest;
    `raydist segment-eval` reads it back from there.

    events: where sound starts and stops, and sudden changes inside it: short-window novelty over
    the latents plus an activity channel, peak picking.
    segments: regions of one source: long-window novelty over the sound frames only (pauses
    skipped) splits sound runs where the source changes without a pause, then adjacent regions
    are merged, closest first, while their Ward distance (size-weighted distance of their mean
    standardised features) is below merge_distance, so a pause inside one source is no boundary.
    The features are the latents less their linear dependence on the frame energy (a level
    change is no change of source) and n_cepstra cepstral coefficients of the log-mel with each
    band's noise floor subtracted (the spectral envelope, which tells voices apart better than
    the latents do), weighted by cepstral_weight. Sound is within 30 dB of the clip's peak and
    noise_margin_db above its noise floor. A boundary across a pause is placed at the new
    source's onset (found at the mel frame rate), or with placement "middle" in the middle of
    the pause."""

    novelty_s: float = 0.25  # events: half-width of the novelty window, seconds (0.5 s missed short gaps)
    min_segment_s: float = 0.15  # events: shortest event; also a peak's neighbourhood and the end margin
    novelty_threshold: float = 1.0  # events: peaks must exceed median + threshold * MAD of the novelty curve
    activity_weight: float = 1.0  # events: weight of the energy channel in the novelty curve (0 = latents only)
    source_novelty_s: float = 0.5  # segments: half-width of the novelty window over active frames, seconds
    source_threshold: float = 2.0  # segments: split peaks must exceed median + threshold * MAD
    merge_distance: float = 3.2  # segments: merge adjacent regions whose Ward distance is below this
    cepstral_weight: float = 3.0  # segments: weight of each standardised cepstral coefficient (0 = latents only)
    n_cepstra: int = 8  # segments: cepstral coefficients c1..cn of the denoised log-mel (at most 12 without it)
    noise_margin_db: float = 3.0  # segments: sound stands this far above the clip's noise floor (0 = no floor)
    placement: str = "onset"  # segments: a boundary across a pause at the new source's onset, or "middle" of the pause

    def __post_init__(self) -> None:
        if self.novelty_s <= 0 or self.min_segment_s <= 0 or self.activity_weight < 0 or self.source_novelty_s <= 0:
            raise ValueError(f"window lengths must be > 0 and activity_weight >= 0: {self}")
        if not 1 <= self.n_cepstra <= 30:
            raise ValueError(f"n_cepstra must be 1-30, got {self.n_cepstra}")
        if self.placement not in ("onset", "middle"):
            raise ValueError(f"placement must be 'onset' or 'middle', got {self.placement!r}")
        for name in ("merge_distance", "cepstral_weight", "noise_margin_db"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def novelty_frames(self, frame_rate: float) -> tuple[int, int]:
        """(novelty half-width, minimum gap) in frames at `frame_rate` frames per second."""
        return max(1, round(self.novelty_s * frame_rate)), max(1, round(self.min_segment_s * frame_rate))

    def source_frames(self, frame_rate: float) -> int:
        """Half-width of the source-level novelty window in frames at `frame_rate` frames per second."""
        return max(1, round(self.source_novelty_s * frame_rate))


def split_embed_config(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Upgrade an old run manifest's single `embed_config` (before 0.2) to the three configs that
    replaced it: resource_config, output_config, segment_config (retry_errors was a run option)."""
    out: dict[str, dict[str, Any]] = {}
    for key, cls in (
        ("resource_config", ResourceConfig),
        ("output_config", OutputConfig),
        ("segment_config", SegmentConfig),
    ):
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        out[key] = {k: v for k, v in data.items() if k in names}
    return out
