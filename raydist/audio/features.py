"""Log-mel features with torchaudio. No Ray here.

`LogMel(cfg)(wave)` computes all frames of a (batch of) waveform(s) as torchaudio's centred
MelSpectrogram does. `LogMel.frames(wave, start, stop)` computes only frames [start, stop) of the
same spectrogram, with the same reflect padding at the edges, so long files are featurised in
bounded memory and the pieces equal the whole.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio
from torch import nn

from raydist.config import FeatureConfig


def num_frames(num_samples: int, cfg: FeatureConfig) -> int:
    """Mel frames torchaudio's centred STFT gives for `num_samples` samples."""
    return 1 + num_samples // cfg.hop_length


class LogMel(nn.Module):
    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        kwargs = dict(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=2.0,
        )
        self.mel = torchaudio.transforms.MelSpectrogram(center=True, pad_mode="reflect", **kwargs)
        self.mel_valid = torchaudio.transforms.MelSpectrogram(center=False, **kwargs)

    def _logmel(self, mel: torchaudio.transforms.MelSpectrogram, wave: torch.Tensor) -> torch.Tensor:
        """log(clamp(mel(wave))), with the power spectrum as re² + im²: equal to torchaudio's
        |z|^2 within float rounding and about 20% faster on CPU (its complex abs is slow)."""
        s = mel.spectrogram
        z = torchaudio.functional.spectrogram(
            wave,
            s.pad,
            s.window,
            s.n_fft,
            s.hop_length,
            s.win_length,
            power=None,
            normalized=s.normalized,
            center=s.center,
            pad_mode=s.pad_mode,
            onesided=s.onesided,
        )
        z = torch.view_as_real(z)
        power = z[..., 0].square() + z[..., 1].square()
        return torch.log(torch.clamp(mel.mel_scale(power), min=self.cfg.log_floor))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(..., N) waveform -> (..., n_mels, 1 + N // hop) log-mel."""
        return self._logmel(self.mel, wave)

    def frames(self, wave: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames [start, stop) of forward(wave) for a 1-D wave, without padding all of it."""
        n, pad, hop = wave.shape[-1], self.cfg.n_fft // 2, self.cfg.hop_length
        assert 0 <= start < stop <= num_frames(n, self.cfg), (start, stop, n)
        assert n > pad, f"reflect padding needs more than {pad} samples, got {n}"
        idx = np.arange(start * hop - pad, (stop - 1) * hop + self.cfg.n_fft - pad)
        idx = np.abs(idx)  # reflect at the start: x[-i] -> x[i]
        idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)  # reflect at the end
        return self._logmel(self.mel_valid, wave[torch.from_numpy(idx)])
