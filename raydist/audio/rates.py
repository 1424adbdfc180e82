"""Which sample rates raydist takes, and the rate its resampler really uses for odd ones. Pure
math (no torch): the decoder, the codec's row checks and its decoder share these numbers, so
whatever decodes also compresses and decompresses."""

from __future__ import annotations

import math

MIN_RATE, MAX_RATE = 1_000, 768_000  # source rates outside this range are refused
MAX_PHASES = 1000  # largest reduced rate (resampler kernel rows) used as is


def workable_rate(rate: int, other: int) -> int:
    """The rate the resampler uses in place of `rate` when converting between `rate` and `other`:
    `rate` itself for every common rate; an odd rate whose ratio to `other` reduces to more than
    MAX_PHASES phases (e.g. 44101 Hz against 16 kHz, whose sinc kernel would take gigabytes) is
    rounded to the nearest multiple of a divisor of `other` that keeps the kernel small. The pitch
    error that costs is under 0.1% at 16 kHz."""
    if other // math.gcd(rate, other) <= MAX_PHASES:
        return rate
    step = next(d for d in range(math.ceil(other / MAX_PHASES), other + 1) if other % d == 0)
    return max(step, round(rate / step) * step)
