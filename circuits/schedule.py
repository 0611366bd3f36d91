"""The learning-rate schedule every training loop here follows: linear warm-up, constant, then
a decay over the last share of the steps."""

import math

SHAPES = ("linear", "cosine")


def learning_rate(
    step: int,
    *,
    peak: float,
    n_steps: int,
    warmup_steps: int,
    decay_fraction: float,
    floor: float = 0.0,
    shape: str = "linear",
) -> float:
    """The rate at `step` (from 0): `peak` after `warmup_steps`, decaying over the last
    `decay_fraction` of `n_steps` to `floor` x `peak`, linearly or along a half cosine."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_start = n_steps * (1 - decay_fraction)
    if step < decay_start:
        return peak
    progress = (step - decay_start) / max(1.0, n_steps - decay_start)
    falloff = progress if shape == "linear" else 0.5 * (1 - math.cos(math.pi * progress))
    return peak * (1 - (1 - floor) * falloff)
