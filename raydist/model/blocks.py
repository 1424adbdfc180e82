"""Reusable 1-D conv blocks. No normalisation over time, so a frame's output depends only on its
receptive field: chunked encoding of long audio equals whole-sequence encoding."""

from __future__ import annotations

from torch import nn


class ResBlock(nn.Module):
    """x + conv1x1(gelu(conv3_dilated(gelu(x))))."""

    def __init__(self, channels: int, dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.GELU(),
            nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation),
            nn.GELU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x):
        return x + self.body(x)


def down(channels: int) -> nn.Conv1d:
    """Halve the frame rate: length T (even) -> T / 2."""
    return nn.Conv1d(channels, channels, 4, stride=2, padding=1)


def up(channels: int) -> nn.ConvTranspose1d:
    """Double the frame rate: length L -> 2 L."""
    return nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1)


def res_stack(channels: int, n: int) -> list[nn.Module]:
    return [ResBlock(channels, dilation=3**i) for i in range(n)]
