"""The learning-rate schedule every training loop here follows: linear warm-up, constant, then
a decay over the last share of the steps."""

import math
from typing import Protocol, runtime_checkable

SHAPES = ("linear", "cosine")


@runtime_checkable
class Schedule(Protocol):
    """The fields of a training config that fix its schedule."""

    @property
    def lr(self) -> float: ...
    @property
    def n_steps(self) -> int: ...
    @property
    def warmup_steps(self) -> int: ...
    @property
    def decay_fraction(self) -> float: ...


def learning_rate(
    step: int, config: Schedule, *, floor: float = 0.0, shape: str = "linear"
) -> float:
    """The rate at `step` (from 0): `config.lr` after `warmup_steps`, decaying over the last
    `decay_fraction` of `n_steps` to `floor` x `lr`, linearly or along a half cosine."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    peak = config.lr
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    decay_start = config.n_steps * (1 - config.decay_fraction)
    if step < decay_start:
        return peak
    progress = (step - decay_start) / max(1.0, config.n_steps - decay_start)
    falloff = progress if shape == "linear" else 0.5 * (1 - math.cos(math.pi * progress))
    return peak * (1 - (1 - floor) * falloff)
