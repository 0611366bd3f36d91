"""Sparse activation functions of transcoders, behind one registry keyed by kind.

Each kind maps encoder pre-activations to sparse feature activations. Training-time behaviour
(penalties, straight-through gradients, thresholds learnt from batches) belongs to the trainer.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

Activation = Callable[[Float[Tensor, "... d_transcoder"]], Float[Tensor, "... d_transcoder"]]


@dataclass(frozen=True, kw_only=True)
class ActivationKind:
    """A registered activation: its name, what it is for, and how to build it."""

    name: str
    """Key used in config files and on the command line."""
    summary: str
    """One line for `transcoders kinds`."""
    build: Callable[..., Activation]
    """Factory taking the kind's parameters (e.g. `k`, `threshold`)."""


ACTIVATIONS: dict[str, ActivationKind] = {}


def register(kind: ActivationKind) -> ActivationKind:
    if kind.name in ACTIVATIONS:
        raise ValueError(f"duplicate activation kind: {kind.name!r}")
    ACTIVATIONS[kind.name] = kind
    return kind


def relu() -> Activation:
    return torch.relu


def topk(*, k: int) -> Activation:
    """Keep the k largest pre-activations per token (after ReLU), zero the rest."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")

    def apply(pre: Tensor) -> Tensor:
        values, indices = pre.topk(min(k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())

    return apply


def jumprelu(*, threshold: Tensor) -> Activation:
    """Pass a pre-activation only where it exceeds its feature's threshold."""
    return lambda pre: pre * (pre > threshold)


register(ActivationKind(name="relu", summary="ReLU, trained with an L1 penalty", build=relu))
register(ActivationKind(name="topk", summary="the k largest per token", build=topk))
register(
    ActivationKind(
        name="batchtopk",
        summary="top k x batch over a batch in training; a learnt threshold at inference",
        build=jumprelu,
    )
)
register(
    ActivationKind(
        name="jumprelu",
        summary="a per-feature threshold, trained with straight-through gradients",
        build=jumprelu,
    )
)
